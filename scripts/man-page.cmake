# cmake -DIN=page.in -DOUT=page -DVERSION=x.y.z [-DKEYS=roff] -P man-page.cmake
# Fills @VERSION@ and, with KEYS, replaces the line '.\" @GROUP_KEYS@' by the generated keys.
cmake_minimum_required(VERSION 3.18) # "@VERSION@" is then a literal, not a variable reference
file(READ ${IN} text)
string(REPLACE "@VERSION@" "${VERSION}" text "${text}")
if(DEFINED KEYS)
  file(READ ${KEYS} keys)
  string(FIND "${text}" ".\\\" @GROUP_KEYS@\n" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${IN}: no '.\\\" @GROUP_KEYS@' line to replace")
  endif()
  string(REPLACE ".\\\" @GROUP_KEYS@\n" "${keys}" text "${text}")
endif()
file(WRITE ${OUT} "${text}")
