// Catch2 v3 brings its own main (Catch2WithMain); v2 needs this translation unit to define it.
#if DITGEN_CATCH_MAJOR < 3
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
#endif
