# Part of `cmake --install` (cmake/install.cmake): the systemd units with the installed paths
# filled in, and the files of /etc. Runs at install time, where CMAKE_INSTALL_PREFIX is the
# prefix of this installation; file(INSTALL) honours DESTDIR.
set(prefix "${CMAKE_INSTALL_PREFIX}")
if(prefix STREQUAL "/usr")
  set(SYSCONFDIR "/etc")
else()
  set(SYSCONFDIR "${prefix}/etc")
endif()
set(SBINDIR "${prefix}/sbin")
if(DEFINED ENV{ASGD_UNITDIR})
  set(unitdir "$ENV{ASGD_UNITDIR}") # debian/rules with a build made for another prefix
elseif(ASGD_UNITDIR)
  set(unitdir "${ASGD_UNITDIR}")
else()
  set(unitdir "${prefix}/lib/systemd/system")
endif()
# asgd@NAME.service is asgd.service for /etc/asgd/NAME.ini with its state in /var/lib/asgd/NAME:
# derived here rather than kept as a second copy of the same unit
file(READ "${ASGD_SRC}/dist/systemd/asgd.service.in" unit)
string(REGEX REPLACE "^# asgd: [^\n]*\n# [^\n]*\n"
       "# asgd@NAME: the node of /etc/asgd/NAME.ini, its state in /var/lib/asgd/NAME (asgd(8)).\n# Each node needs its own [api] and [monitor] listen addresses.\n" unit "${unit}")
string(REPLACE "Description=asgd:" "Description=asgd node %i:" unit "${unit}")
string(REPLACE "asgd/asgd.ini" "asgd/%i.ini" unit "${unit}")
string(REPLACE "StateDirectory=asgd\n" "StateDirectory=asgd/%i\n" unit "${unit}")
file(WRITE "${ASGD_OUT}/asgd@.service.in" "${unit}")
foreach(unit asgd.service asgd@.service monitorc.service)
  set(in "${ASGD_SRC}/dist/systemd/${unit}.in")
  if(unit STREQUAL "asgd@.service")
    set(in "${ASGD_OUT}/asgd@.service.in")
  endif()
  configure_file("${in}" "${ASGD_OUT}/${unit}" @ONLY)
  file(INSTALL "${ASGD_OUT}/${unit}" DESTINATION "${unitdir}" PERMISSIONS OWNER_READ OWNER_WRITE
       GROUP_READ WORLD_READ)
endforeach()
set(conf OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(INSTALL "${ASGD_SRC}/dist/etc/asgd.ini" DESTINATION "${SYSCONFDIR}/asgd" PERMISSIONS ${conf})
file(INSTALL "${ASGD_SRC}/dist/etc/groups/example.ini" DESTINATION "${SYSCONFDIR}/asgd/groups"
     PERMISSIONS ${conf})
file(INSTALL "${ASGD_SRC}/dist/default/asgd" "${ASGD_SRC}/dist/default/monitorc"
     DESTINATION "${SYSCONFDIR}/default" PERMISSIONS ${conf})
