# The Debian package (CPack's DEB generator), built by scripts/package.sh
# from a build configured with -DCMAKE_INSTALL_PREFIX=/usr.
# Runtime dependencies: dpkg-shlibdeps derives those of the linked
# libraries (libc6, libunwind8); libdw, libelf, zlib and protobuf-c are
# loaded with dlopen on first use (src/lazy_deps.c), invisible to it, so
# they are named here; scripts/package.sh checks the list against
# src/lazy_deps.c with dpkg -S.
set(HEAPPROF_DEB_DLOPEN_DEPENDS "libdw1 (>= 0.188), libelf1 (>= 0.188), zlib1g (>= 1:1.2.13), libprotobuf-c1 (>= 1.4.1)")

# Debian policy's documentation files: /usr/share/doc/heapprof/copyright
# and, for a native package, changelog.gz (gzip -9n: reproducible).
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/packaging/copyright
  DESTINATION ${CMAKE_INSTALL_DOCDIR})
find_program(HP_GZIP gzip)
if(HP_GZIP)
  add_custom_command(OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/changelog.gz
    COMMAND ${HP_GZIP} -9nc ${CMAKE_CURRENT_SOURCE_DIR}/packaging/changelog
      > ${CMAKE_CURRENT_BINARY_DIR}/changelog.gz
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/packaging/changelog)
  add_custom_target(heapprof_changelog ALL DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/changelog.gz)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/changelog.gz DESTINATION ${CMAKE_INSTALL_DOCDIR})
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME heapprof)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(HEAPPROF_DEB_MAINTAINER "heapprof maintainers <heapprof@example.org>" CACHE STRING
  "Maintainer field of the Debian package")
set(CPACK_PACKAGE_CONTACT ${HEAPPROF_DEB_MAINTAINER})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "sampling heap profiler for C servers, in pprof format")
set(CPACK_PACKAGE_DESCRIPTION
  "heapprof samples the allocations of a running C or C++ program and serves
heap profiles in pprof's format over HTTP, or writes them to files. It is
preloaded (LD_PRELOAD, the heapprof launcher), linked in (libheapprof), or
loaded into nginx as a dynamic module.")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
# The ldconfig trigger (lintian requires it of a package with a library).
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_CURRENT_SOURCE_DIR}/packaging/triggers)
set(CPACK_DEBIAN_PACKAGE_DEPENDS ${HEAPPROF_DEB_DLOPEN_DEPENDS})
# The nginx module loads only into the nginx it was built against.
set(CPACK_DEBIAN_PACKAGE_ENHANCES nginx)
set(CPACK_OUTPUT_FILE_PREFIX ${CMAKE_CURRENT_SOURCE_DIR}/dist)
include(CPack)
