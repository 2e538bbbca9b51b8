# The README's commands. Everything real happens in CMake (CMakeLists.txt).
#   make         build build/bin/{asgd,asgctl,monitorc}
#   make test    install deps, build, run every test (also the C unit tests under ASan+UBSan)
#   make demo    install deps, build, run a local group with the dashboard
#   make bench   run the benchmarks (not bench_swarm: the agents they use) (make bench-fleet:
#                asgd at 10,000 on the EC2 path, minutes)
#   make install [PREFIX=/usr/local] [DESTDIR=]   programs, man pages, units, configs, docs
#   make deb     the Debian packages asgd and monitorc (dpkg-buildpackage; into build/deb/)
#   make lint    clang-format, cppcheck; make tidy: clang-tidy (.clang-tidy) on src/
PREFIX ?= /usr/local
DESTDIR ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: all deps build build-asan test test-unit demo bench bench-fleet fuzz fuzz-long format lint tidy clean install deb

all: build

deps:
	@scripts/install-deps

build: deps
	@cmake -S . -B build $(CMAKE_FLAGS) >/dev/null
	@cmake --build build -j$(JOBS)

build-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DASGD_SANITIZE=ON -DASGD_INTEGRATION=OFF >/dev/null
	@cmake --build build-asan -j$(JOBS)

# Unit tests under ASan+UBSan first (fast, catch memory errors), then the whole
# suite (unit + integration against the real binaries) in the normal build.
test: build build-asan
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -L unit -j$(JOBS)
	@scripts/fuzz-smoke build-fuzz
	cd build && ctest --output-on-failure -j$(JOBS)

test-unit: build
	cd build && ctest --output-on-failure -L unit -j$(JOBS)

# only asgd's own lines: the build goes to build/demo-build.log (scripts/demo)
demo: deps
	@scripts/demo

bench: build
	@for b in build/bench/*; do \
	  case "$$b" in */bench_swarm) continue;; esac; \
	  [ -x "$$b" ] && "$$b"; done
	@/usr/bin/python3 bench/cluster.py

# the real daemon holding 2,000 / 5,000 / 10,000 instances on the EC2 stand-in (minutes)
bench-fleet: build
	@/usr/bin/python3 bench/fleet_ec2

fuzz:
	@scripts/fuzz-smoke build-fuzz

# Every fuzz target for 10 M executions (long: not part of make test).
fuzz-long:
	@FUZZ_RUNS=10000000 scripts/fuzz-smoke build-fuzz

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h' 'bench/*.c' 'bench/*.h')

lint:
	@scripts/lint

# the static analyzer and bugprone checks of .clang-tidy on src/ (make test runs the same:
# integration/test_tidy). tests/ and bench/ are not clean yet: scripts/tidy --all shows them.
tidy: build
	@TIDY_JOBS=$(JOBS) scripts/tidy build

# The paths the units and /etc files name follow PREFIX at install time (cmake/install-dist.cmake).
install: build
	DESTDIR=$(DESTDIR) cmake --install build --prefix $(PREFIX)

# debian/: dh with CMake, built from a clean tree of its own (build/deb/src), packages in build/deb/
deb: deps
	@scripts/build-deb build/deb

clean:
	rm -rf build build-asan build-fuzz
