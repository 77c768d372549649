// The planner's view of a loaded model (planner/model_shape.h).
#pragma once

#include "model/model.h"
#include "planner/model_shape.h"

namespace so {

ModelShape model_shape_of(const Model& model);

}  // namespace so
