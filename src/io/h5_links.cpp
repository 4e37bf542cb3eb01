#include "io/h5_links.hpp"

#include "core/error.hpp"

namespace sf::h5 {

std::vector<std::string> hard_link_names(hid_t file, const std::filesystem::path& path) {
  // Names are collected first: an exception thrown in the callback must not cross libhdf5's C frames.
  std::vector<std::string> names;
  const herr_t visited = H5Lvisit(
      file, H5_INDEX_NAME, H5_ITER_NATIVE,
      [](hid_t, const char* name, const H5L_info_t* info, void* out) -> herr_t {
        if (info->type == H5L_TYPE_HARD) static_cast<std::vector<std::string>*>(out)->push_back(name);
        return 0;
      },
      &names);
  if (visited < 0)
    throw FormatError(path.string() + ": libhdf5 cannot list the links of every group after " +
                      std::to_string(names.size()) + " objects (a damaged file)");
  return names;
}

}  // namespace sf::h5
