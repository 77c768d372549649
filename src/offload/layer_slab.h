// A layer's tensors packed into one contiguous slab, so streaming a layer is one copy.
// Tensors sit at 64-byte aligned offsets in a fixed order (layer_slab.cpp visits them).
#pragma once

#include <cstdint>
#include <vector>

#include "base/thread_pool.h"
#include "model/config.h"
#include "model/weights.h"

namespace so {

struct LayerSlabLayout {
  int64_t bytes = 0;
  std::vector<int64_t> offsets;  // per tensor, in visiting order
};

LayerSlabLayout layer_slab_layout(const LayerWeights& layer, const ModelConfig& config);
// Copies the layer's tensors into slab (layout.bytes bytes), over the pool's threads when given.
void pack_layer(const LayerWeights& layer, const ModelConfig& config, const LayerSlabLayout& layout, void* slab,
                ThreadPool* pool = nullptr);
// Where each tensor of the slab comes from: (source bytes, size), in layout order.
std::vector<std::pair<const uint8_t*, int64_t>> layer_sources(const LayerWeights& layer, const ModelConfig& config);
// Per layer of the first n_layers: the first layer whose slab would hold the same bytes (its
// tensors read the same memory: dummy weights alias one pool), or itself.
std::vector<int> layer_twins(const ModelWeights& weights, const ModelConfig& config, int n_layers);
// The layer's weights as views into a slab packed by pack_layer (shapes and dtypes of `like`).
LayerWeights layer_views(const LayerWeights& like, const ModelConfig& config, const LayerSlabLayout& layout,
                         const void* slab);

}  // namespace so
