// Tokenizer::from_model_file on a Hugging Face directory: tokenizer.json plus the optional
// tokenizer_config.json, generation_config.json and chat_template.jinja beside it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tokenizer/tokenizer.h"

namespace so {
namespace {

class HfDirectory : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ = std::filesystem::temp_directory_path() /
                 ("so_tokenizer_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(directory_);
  }
  void TearDown() override { std::filesystem::remove_all(directory_); }

  void write(const std::string& name, const std::string& text) { std::ofstream(directory_ / name) << text; }
  Result<std::unique_ptr<Tokenizer>> load() {
    ModelFile model;
    model.format = ModelFormat::kSafetensors;
    model.path = directory_.string();
    return Tokenizer::from_model_file(model);
  }

  std::filesystem::path directory_;
};

const char* kTokenizerJson = R"({
  "added_tokens": [{"id": 3, "content": "<|begin_of_text|>", "special": true},
                   {"id": 4, "content": "<|eot_id|>", "special": true},
                   {"id": 5, "content": "<|eom_id|>", "special": true}],
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
  "decoder": {"type": "ByteLevel"},
  "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]}})";

TEST_F(HfDirectory, ReadsConfigGenerationConfigAndTemplateFile) {
  write("tokenizer.json", kTokenizerJson);
  write("tokenizer_config.json", R"({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
                                     "add_bos_token": true})");
  write("generation_config.json", R"({"eos_token_id": [4, 5]})");
  write("chat_template.jinja", "{{ '<|start_header_id|>' }}");
  auto tokenizer = load();
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().to_string();
  const Tokenizer& t = **tokenizer;
  EXPECT_EQ(t.encode("abab", true, true), (std::vector<int32_t>{3, 2, 2}));
  EXPECT_EQ(t.bos_id(), 3);
  EXPECT_EQ(t.eos_id(), 4);
  EXPECT_TRUE(t.is_end_of_generation(5));  // from generation_config.json
  EXPECT_FALSE(t.is_end_of_generation(3));
  EXPECT_EQ(t.chat_template(), "{{ '<|start_header_id|>' }}");
}

TEST_F(HfDirectory, MissingTokenizerJsonSaysWhatIsNeeded) {
  write("tokenizer.model", "binary");
  auto tokenizer = load();
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_EQ(tokenizer.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(tokenizer.status().message().find("no tokenizer.json in " + directory_.string()), std::string::npos)
      << tokenizer.status().message();
  EXPECT_NE(tokenizer.status().message().find("tokenizer.model alone is not supported"), std::string::npos);
}

TEST_F(HfDirectory, BrokenConfigIsAFormatErrorNamingTheFile) {
  write("tokenizer.json", kTokenizerJson);
  write("tokenizer_config.json", "{oops");
  auto tokenizer = load();
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_EQ(tokenizer.status().code(), ErrorCode::kFormat);
  EXPECT_NE(tokenizer.status().message().find("tokenizer_config.json is not valid JSON"), std::string::npos);
}

}  // namespace
}  // namespace so
