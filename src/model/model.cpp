#include "model/model.h"

namespace so {

Result<std::unique_ptr<Model>> load_model(const std::string& path, MapMode mode) {
  auto model = std::make_unique<Model>();
  SO_ASSIGN_OR_RETURN(model->file, open_model_file(path, mode));
  SO_ASSIGN_OR_RETURN(model->config, model_config_from_file(model->file));
  auto weights = map_model_weights(model->file, model->config);
  if (!weights.ok()) return weights.status().with_context(str_cat("loading '", path, "'"));
  model->weights = std::move(weights).value();
  return model;
}

}  // namespace so
