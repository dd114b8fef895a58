# Included by CMake right after llama.cpp's project() call (CMAKE_PROJECT_llama.cpp_INCLUDE), when
# scripts/install.sh compiles llama-cpp-python. kb loads only libllama and ggml through the Python
# bindings, so the common utilities (argument parsing, chat templates, HTTP downloads: about 50
# template-heavy files) are not built. llama-cpp-python forces the cache variable on; a normal
# variable of the same name shadows it in llama.cpp's folder and below (policy CMP0077).
set(LLAMA_BUILD_COMMON OFF)
