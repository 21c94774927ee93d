# Build step: OUT = the output of `PROG --print-config` (the sample config).
#   cmake -DPROG=.../safeevald -DOUT=.../safeevald.conf -P print-config.cmake
get_filename_component(dir "${OUT}" DIRECTORY)
file(MAKE_DIRECTORY "${dir}")
execute_process(COMMAND "${PROG}" --print-config
  OUTPUT_FILE "${OUT}.tmp" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE "${OUT}.tmp")
  message(FATAL_ERROR "${PROG} --print-config failed: ${rc}")
endif()
file(RENAME "${OUT}.tmp" "${OUT}")
