"""Tree ensemble → C (Treelite + TL2cgen) → a shared library built with the machine's gcc.

TL2cgen writes one `predict(entries, pred_margin, result)` function per model; we add
`mh_predict_batch`, a loop over rows that turns NaN into TL2cgen's missing marker, so a
caller (the compiled runtime, or the edge server through ctypes) scores any number of
rows in one call. The C sources are kept beside the library: an edge device with another
CPU rebuilds them with its own compiler.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from modelhost.compile.sources import CompileError

log = logging.getLogger("modelhost.compile")

# Trees per translation unit: lets two cores compile a 500-tree model in parallel, and
# keeps each unit small enough for -O2 to finish in seconds.
TREES_PER_UNIT = 50
CFLAGS = ("-O2", "-fPIC", "-std=gnu99", "-fno-strict-aliasing")

_BATCH_C = """\
/* modelhost: score many rows in one call; NaN in `x` marks a missing value (the
   generated tests read NaN as missing: see native_c.py). */
#include "header.h"

#define MH_NOUT (N_TARGET * MAX_N_CLASS)
#define MH_STACK_FEATURES 1024

int32_t mh_num_output(void) { return MH_NOUT; }

void mh_predict_batch(const FTYPE* x, int64_t nrow, int32_t ncol, int32_t pred_margin,
                      LTYPE* out) {
  int32_t nfeat = get_num_feature();
  union Entry stack_row[MH_STACK_FEATURES];
  union Entry* row = nfeat <= MH_STACK_FEATURES
      ? stack_row : (union Entry*)malloc(sizeof(union Entry) * (size_t)nfeat);
  for (int64_t r = 0; r < nrow; ++r) {
    const FTYPE* xr = x + r * (int64_t)ncol;
    for (int32_t c = 0; c < nfeat; ++c) {
      row[c].fvalue = c < ncol ? xr[c] : (FTYPE)NAN;
    }
    LTYPE* o = out + r * MH_NOUT;
    for (int k = 0; k < MH_NOUT; ++k) o[k] = 0;
    predict(row, pred_margin, o);
  }
  if (row != stack_row) free(row);
}
"""


# TL2cgen marks a missing value by an int -1 in the union's first four bytes; a double
# just below a float32-representable number (e.g. a LightGBM threshold's neighbour) has
# those bytes set too and would read as missing. NaN itself is the marker instead.
_MISSING = re.compile(r"(data\[\d+\])\.missing != -1")


_LEAF = re.compile(r"(result\[\d+\] \+= )(-?[0-9][0-9.eE+-]*);")
_BASE_SCORES = re.compile(r"  // Apply base_scores\n((?:  result\[\d+\] \+= [^\n]+;\n)+)")
_PREDICT_BODY = re.compile(
    r"(void predict\(union Entry\* data, int pred_margin, \w+\* result\) \{\n)"
)


def _base_scores_first(code: str) -> str:
    """Add the base scores before the trees, not after: XGBoost starts each row's sum from
    its base margin, and float32 sums in the same order give the same bits."""
    found = _BASE_SCORES.search(code)
    if found is None or not _PREDICT_BODY.search(code):
        return code
    code = code[: found.start()] + code[found.end() :]
    return _PREDICT_BODY.sub(lambda m: m.group(1) + found.group(1), code, count=1)


def c_compiler() -> str:
    """The C compiler to use: $CC, else gcc, else cc; `CompileError` when there is none."""
    for name in (os.environ.get("CC"), "gcc", "cc"):
        if name and shutil.which(name):
            return name
    raise CompileError(
        "No C compiler found on the compiling machine (looked for $CC, gcc and cc): "
        "install one (Debian: apt-get install gcc) to compile to a native library; "
        "the ONNX target needs none"
    )


def generate(treelite_model: Any, src_dir: Path) -> list[Path]:
    """Write the model's C sources into `src_dir`; returns the .c files to compile."""
    import tl2cgen

    num_tree = int(treelite_model.num_tree)
    units = max(1, num_tree // TREES_PER_UNIT)
    params = {"parallel_comp": units} if units > 1 else {}
    tl2cgen.generate_c_code(treelite_model, str(src_dir), params=params)
    header = (src_dir / "header.h").read_text()
    # The input and output types follow the model (float for XGBoost, double for
    # LightGBM and scikit-learn); the batch loop reads them from TL2cgen's header.
    ftype = re.search(r"(\w+) fvalue;", header)
    ltype = re.search(r"int pred_margin, (\w+)\* result\)", header)
    if ftype is None or ltype is None:
        raise CompileError("TL2cgen wrote a header this modelhost version does not understand")
    for source in src_dir.glob("*.c"):
        code = _MISSING.sub(r"!isnan(\1.fvalue)", source.read_text())
        if ltype.group(1) == "float":
            # `float += 0.123456` adds in double and rounds once; XGBoost adds the float
            # leaf value, rounding twice. Float literals make the sums bit-identical.
            code = _LEAF.sub(r"\1(float)(\2);", code)
        source.write_text(_base_scores_first(code) if source.name == "main.c" else code)
    (src_dir / "mh_batch.c").write_text(
        f"#define FTYPE {ftype.group(1)}\n#define LTYPE {ltype.group(1)}\n" + _BATCH_C
    )
    return sorted(src_dir.glob("*.c"))


def build(sources: list[Path], library: Path, timeout_s: float) -> None:
    """Compile `sources` into `library` (two units at a time on this machine's cores)."""
    cc = c_compiler()
    objects = [src.with_suffix(".o") for src in sources]

    def one(src: Path, obj: Path) -> None:
        _run([cc, *CFLAGS, "-c", str(src), "-o", str(obj)], src.parent, timeout_s)

    workers = max(1, min(len(sources), os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(one, s, o) for s, o in zip(sources, objects, strict=True)]:
            future.result()
    _run([cc, "-shared", "-o", str(library), *map(str, objects), "-lm"], library.parent, timeout_s)
    for obj in objects:
        obj.unlink(missing_ok=True)


def _run(argv: list[str], cwd: Path, timeout_s: float) -> None:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise CompileError(
            f"The C compiler took longer than {timeout_s:.0f} s; raise "
            "StoppingCondition.MaxRuntimeInSeconds or use fewer trees"
        ) from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise CompileError(f"The C compiler ({argv[0]}) failed: {' | '.join(tail)}")
