# FindBoringSSL: BoringSSL from Debian's android-libboringssl-dev.
# Headers live in /usr/include/android (so they shadow, never mix with, OpenSSL's /usr/include/openssl),
# libraries in /usr/lib/<triplet>/android. Consumers get an rpath to that directory.
#
# Provides BoringSSL::ssl and BoringSSL::crypto (imported), BoringSSL_FOUND, BoringSSL_INCLUDE_DIR.
# Rule (DESIGN.md): a target that links these must never link grpc++ (which links OpenSSL 3).
find_path(BoringSSL_INCLUDE_DIR openssl/base.h
  PATHS /usr/include/android NO_DEFAULT_PATH)
find_library(BoringSSL_SSL_LIBRARY NAMES ssl
  PATHS /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/android /usr/lib/x86_64-linux-gnu/android NO_DEFAULT_PATH)
find_library(BoringSSL_CRYPTO_LIBRARY NAMES crypto
  PATHS /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/android /usr/lib/x86_64-linux-gnu/android NO_DEFAULT_PATH)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(BoringSSL
  REQUIRED_VARS BoringSSL_INCLUDE_DIR BoringSSL_SSL_LIBRARY BoringSSL_CRYPTO_LIBRARY)

if(BoringSSL_FOUND AND NOT TARGET BoringSSL::crypto)
  file(STRINGS ${BoringSSL_INCLUDE_DIR}/openssl/base.h _is_boring REGEX "define OPENSSL_IS_BORINGSSL")
  if(NOT _is_boring)
    message(FATAL_ERROR "${BoringSSL_INCLUDE_DIR}/openssl/base.h is not BoringSSL")
  endif()
  get_filename_component(BoringSSL_LIBRARY_DIR ${BoringSSL_CRYPTO_LIBRARY} DIRECTORY)
  add_library(BoringSSL::crypto UNKNOWN IMPORTED)
  set_target_properties(BoringSSL::crypto PROPERTIES
    IMPORTED_LOCATION ${BoringSSL_CRYPTO_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${BoringSSL_INCLUDE_DIR}
    INTERFACE_LINK_OPTIONS "-Wl,-rpath,${BoringSSL_LIBRARY_DIR}")
  add_library(BoringSSL::ssl UNKNOWN IMPORTED)
  set_target_properties(BoringSSL::ssl PROPERTIES
    IMPORTED_LOCATION ${BoringSSL_SSL_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${BoringSSL_INCLUDE_DIR}
    INTERFACE_LINK_LIBRARIES BoringSSL::crypto)
endif()
mark_as_advanced(BoringSSL_INCLUDE_DIR BoringSSL_SSL_LIBRARY BoringSSL_CRYPTO_LIBRARY)
