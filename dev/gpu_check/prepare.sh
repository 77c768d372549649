#!/usr/bin/env bash
# Fills .gpu/ (ignored by git) with what dev/gpu_check/run.sh needs on the GPU machine, which reaches no registry:
# the gguf wheel (make_models.py), the shared libraries of this machine's build that its image lacks, and the
# benchmark prompts (HumanEval, State of the Union openings cut to 1000 characters). Run here after scripts/build.sh.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
mkdir -p .gpu/whl .gpu/lib .gpu/data
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform any -d .gpu/whl gguf==0.19.0
for lib in libcpp-httplib.so.0.11 libxxhash.so.0 libbrotlicommon.so.1 libbrotlidec.so.1 libbrotlienc.so.1; do
  cp -L "/lib/x86_64-linux-gnu/$lib" .gpu/lib/
done
shared="${SPECOFFLOAD_SHARED_DATA:-$repo/../shared/data}"
cp "$shared/HumanEval.jsonl.gz" .gpu/data/
python3 -c 'import json, sys
for line in sys.stdin: print(json.dumps({"text": json.loads(line)["text"][:1000]}))' <"$shared/sotu.jsonl" >.gpu/data/sotu.jsonl
du -sh .gpu
