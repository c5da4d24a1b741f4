"""Merge study runs over config groups (`--configs`, same `--windows`/`--prompt`/`--decode`,
e.g. two single-thread processes) into one summary over the windows every run finished:

    python -m spatten_dv.models.accuracy.merge RUN_A RUN_B OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from spatten_dv.errors import UserError
from spatten_dv.models.accuracy.configs import DEFAULT_NAMES, resolve, select_configs
from spatten_dv.models.accuracy.evaluation import WindowResult
from spatten_dv.models.accuracy.report import summarize, write_outputs


def merge_runs(runs: list[Path], out: Path) -> dict:
    rows: dict[tuple[str, int], WindowResult] = {}
    names: list[str] = []
    metas, complete = [], []
    for run in runs:
        try:
            meta = json.loads((run / "results.json").read_text())["meta"]
            lines = (run / "windows.jsonl").read_text().splitlines()
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"{run}: not a study output folder ({exc})") from None
        metas.append(meta)
        by_window: dict[int, set[str]] = {}
        for line in lines:
            r = WindowResult(**json.loads(line))
            rows[(r.config, r.window)] = r
            by_window.setdefault(r.window, set()).add(r.config)
            if r.config not in names:
                names.append(r.config)
        group = set().union(*by_window.values()) if by_window else set()
        complete.append({w for w, c in by_window.items() if c == group})
    keys = ("windows", "prompt_tokens", "decode_tokens", "model", "text")
    if any(tuple(m.get(k) for k in keys) != tuple(metas[0].get(k) for k in keys)
           for m in metas):
        raise UserError(f"the runs differ in {', '.join(keys)}")
    common = sorted(set.intersection(*complete))
    if not common:
        raise UserError("the runs have no finished window in common")
    order = [n for n in DEFAULT_NAMES if n in names] + [n for n in names
                                                        if n not in DEFAULT_NAMES]
    configs = resolve(select_configs(order), metas[0]["layers"], metas[0]["heads"])
    meta = dict(metas[0])
    meta.update(windows_done=len(common), seconds=max(m.get("seconds", 0) for m in metas),
                merged_from=[str(r) for r in runs])
    summary = summarize(configs, [rows[(c.name, w)] for c in configs for w in common], meta)
    write_outputs(out, summary)
    return summary


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: python -m spatten_dv.models.accuracy.merge RUN... OUT", file=sys.stderr)
        return 2
    try:
        s = merge_runs([Path(a) for a in argv[:-1]], Path(argv[-1]))
    except UserError as exc:
        print(f"merge: error: {exc}", file=sys.stderr)
        return 2
    print(f"{s['meta']['windows_done']} windows merged into {argv[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
