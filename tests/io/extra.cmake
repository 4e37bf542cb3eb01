# test_h5_vlen_check rewrites a compressed chunk itself (zlib), as a damaged file would hold it.
target_link_libraries(test_io PRIVATE ZLIB::ZLIB)
