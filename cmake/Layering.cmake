# One static library per folder under src/. A library sees only its own headers and those
# of the libraries it may use (ARCHITECTURE.md section 4), so a wrong include fails to
# compile with "No such file or directory".
#
# Each library gets an include root in the build tree holding symlinks to itself and to
# the transitive closure of its allowed dependencies.

set(SO_LAYER_ROOT "${CMAKE_BINARY_DIR}/layering")

# so_layer_closure(<out-var> <lib>...): transitive closure over SO_USES_<lib>.
function(so_layer_closure out)
  set(pending ${ARGN})
  set(seen "")
  while(pending)
    list(POP_FRONT pending lib)
    if(lib IN_LIST seen)
      continue()
    endif()
    list(APPEND seen ${lib})
    list(APPEND pending ${SO_USES_${lib}})
  endwhile()
  set(${out} ${seen} PARENT_SCOPE)
endfunction()

# so_add_library(<lib> [SUBDIRS <dir>...] USES <lib>... [LINK <target>...])
# Sources: every .cpp in src/<lib>/ and its SUBDIRS (and .cu there when CUDA is on). Files named *_avx2.cpp are compiled
# with AVX2/FMA/F16C, *_avx512.cpp also with AVX-512 F/BW/VL/DQ/VNNI; their code must only
# run after a CPU check.
function(so_add_library lib)
  cmake_parse_arguments(ARG "" "" "SUBDIRS;USES;LINK" ${ARGN})
  set(globs "${PROJECT_SOURCE_DIR}/src/${lib}/*.cpp")
  foreach(dir IN LISTS ARG_SUBDIRS)
    list(APPEND globs "${PROJECT_SOURCE_DIR}/src/${lib}/${dir}/*.cpp")
    if(SO_HAVE_CUDA)
      list(APPEND globs "${PROJECT_SOURCE_DIR}/src/${lib}/${dir}/*.cu")
    endif()
  endforeach()
  file(GLOB ARG_SOURCES CONFIGURE_DEPENDS ${globs})
  set(avx2_sources ${ARG_SOURCES})
  list(FILTER avx2_sources INCLUDE REGEX "_avx2\\.cpp$")
  if(avx2_sources)
    set_source_files_properties(${avx2_sources} PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c")
  endif()
  set(avx512_sources ${ARG_SOURCES})
  list(FILTER avx512_sources INCLUDE REGEX "_avx512\\.cpp$")
  if(avx512_sources)
    set_source_files_properties(${avx512_sources} PROPERTIES COMPILE_OPTIONS
      "-mavx2;-mfma;-mf16c;-mavx512f;-mavx512bw;-mavx512vl;-mavx512dq;-mavx512vnni")
  endif()
  set(SO_USES_${lib} ${ARG_USES} CACHE INTERNAL "")
  so_layer_closure(visible ${lib})
  set(root "${SO_LAYER_ROOT}/${lib}")
  file(REMOVE_RECURSE "${root}")
  file(MAKE_DIRECTORY "${root}")
  foreach(dep IN LISTS visible)
    file(CREATE_LINK "${PROJECT_SOURCE_DIR}/src/${dep}" "${root}/${dep}" SYMBOLIC)
  endforeach()
  if(NOT ARG_SOURCES)  # a library whose folder has only headers so far
    set(ARG_SOURCES "${SO_LAYER_ROOT}/${lib}_empty.cpp")
    file(WRITE "${ARG_SOURCES}" "")
  endif()
  add_library(so_${lib} STATIC ${ARG_SOURCES})
  target_include_directories(so_${lib} PRIVATE "${root}")
  set_target_properties(so_${lib} PROPERTIES SO_INCLUDE_ROOT "${root}")
  foreach(dep IN LISTS ARG_USES)
    target_link_libraries(so_${lib} PUBLIC so_${dep})
  endforeach()
  if(ARG_LINK)
    target_link_libraries(so_${lib} PUBLIC ${ARG_LINK})
  endif()
endfunction()

# so_use_layer(<target> <lib>): let an executable see <lib> and what it uses.
function(so_use_layer target lib)
  get_target_property(root so_${lib} SO_INCLUDE_ROOT)
  target_include_directories(${target} PRIVATE "${root}")
  target_link_libraries(${target} PRIVATE so_${lib})
endfunction()
