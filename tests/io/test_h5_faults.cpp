// HDF5 writes through the fault-injection seam (core/fault.hpp): an injected ENOSPC/EIO in an
// append, a flush or the close is one IoError naming the file (and dataset) and the errno.
#include <gtest/gtest.h>

#include <cstdlib>

#include "core/error.hpp"
#include "io/h5.hpp"
#include "testutil/testutil.hpp"

namespace {

std::string error_of(const std::string& fault, const std::function<void()>& f) {
  ::setenv("SUPERFICIAL_FAULT", fault.c_str(), 1);
  std::string error;
  try {
    f();
  } catch (const sf::IoError& e) {
    error = e.what();
  }
  ::unsetenv("SUPERFICIAL_FAULT");
  return error;
}

TEST(H5Faults, AppendFlushAndCloseNameFileAndErrno) {
  sf::test::TempDir dir("h5-faults");
  const auto path = dir / "unit.h5.part";
  sf::h5::File f = sf::h5::File::create(path);
  const sf::h5::Dataset d = f.create_dataset("values", {"float32", {2}, 4, 0});
  d.append(torch::ones({3, 2}));
  std::string e = error_of("write:1:ENOSPC", [&] { d.append(torch::ones({1, 2})); });
  EXPECT_EQ(e, path.string() + ":/values: writing 1 rows failed: No space left on device (ENOSPC)");
  e = error_of("write:1:EIO:unit.h5", [&] { f.flush(); });
  EXPECT_EQ(e, path.string() + ": flushing failed: Input/output error (EIO)");
  d.append(torch::ones({2, 2}));  // no fault: the file still works
  EXPECT_EQ(d.rows(), 5);
  e = error_of("write:1:EIO", [&] { f.close(); });
  EXPECT_EQ(e, path.string() + ": closing failed: Input/output error (EIO)");
}

}  // namespace
