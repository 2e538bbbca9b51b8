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
foreach(unit asgd.service asgd@.service monitorc.service)
  configure_file("${ASGD_SRC}/dist/systemd/${unit}.in" "${ASGD_OUT}/${unit}" @ONLY)
  file(INSTALL "${ASGD_OUT}/${unit}" DESTINATION "${unitdir}" PERMISSIONS OWNER_READ OWNER_WRITE
       GROUP_READ WORLD_READ)
endforeach()
set(conf OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(INSTALL "${ASGD_SRC}/dist/etc/asgd.ini" DESTINATION "${SYSCONFDIR}/asgd" PERMISSIONS ${conf})
file(INSTALL "${ASGD_SRC}/dist/etc/groups/example.ini" DESTINATION "${SYSCONFDIR}/asgd/groups"
     PERMISSIONS ${conf})
file(INSTALL "${ASGD_SRC}/dist/default/asgd" "${ASGD_SRC}/dist/default/monitorc"
     DESTINATION "${SYSCONFDIR}/default" PERMISSIONS ${conf})
