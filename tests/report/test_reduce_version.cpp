// reduce refuses a results file of another schema version and says what to do.
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "core/job.hpp"
#include "io/h5.hpp"
#include "report/reduce.hpp"
#include "testutil/testutil.hpp"

namespace {

TEST(Reduce, RefusesAnotherResultsSchemaVersion) {
  sf::test::TempDir dir("reduce-version");
  std::filesystem::create_directories(dir.path() / "evaluate");
  {
    const auto f = sf::h5::File::create(dir.path() / "evaluate" / "results.h5");
    f.set_attr("schema", "results");
    f.set_attr("schema_version", static_cast<int64_t>(1));
  }
  const sf::Job job = sf::Job::parse("run_dir: " + dir.path().string() + "\nmodels: {}\ntasks: []\n", "job");
  try {
    sf::report::reduce_run(dir.path(), job, sf::report::ReduceSettings{});
    FAIL() << "a v1 results file was reduced";
  } catch (const sf::FormatError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("results v1"), std::string::npos) << msg;
    EXPECT_NE(msg.find("this build reduces results v2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("re-run `superficial evaluate`"), std::string::npos) << msg;
  }
}

}  // namespace
