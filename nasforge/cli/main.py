"""The `nasforge` command. User errors print one line and exit 2; `--debug` shows tracebacks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from nasforge.core.errors import UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _names(kind: str) -> str:
    """The registered names (plugins included), so --help never lists a stale set."""
    from nasforge.core.options import names

    return ", ".join(names(kind))


def _kv(text: str) -> tuple[str, Any]:
    """KEY=VALUE with VALUE parsed as YAML (numbers, 1e-3 included, booleans, lists)."""
    import yaml

    from nasforge.core.numbers import load_yaml

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), load_yaml(value)
    except yaml.YAMLError:
        return key.strip(), value


def _add_storage(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", help="SQLAlchemy URL (default: sqlite file under the user data directory)")


def build_parser() -> argparse.ArgumentParser:
    from nasforge import __version__

    parser = _Parser(prog="nasforge", description="Neural architecture search on PyTorch.")
    parser.add_argument("--version", action="version", version=f"nasforge {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("search", help="run or resume a search")
    s.add_argument("--config", help="YAML or TOML file with the same keys as these flags")
    s.add_argument("--data", help="CSV/TSV file (optionally .gz) or builtin:NAME "
                                  "(digits, breast_cancer, wine, iris, diabetes; sequences: cbf)")
    s.add_argument("--label", help="label column: name or index (default: last column)")
    s.add_argument("--task", choices=["classification", "regression"], help="override the inferred task")
    s.add_argument("--header", dest="header", action="store_const", const=True, help="the file has a header row")
    s.add_argument("--no-header", dest="header", action="store_const", const=False, help="the file has no header")
    s.add_argument("--sep", help="field separator (default: tab for .tsv, else sniffed)")
    s.add_argument("--valid-file", help="validation file (default: a stratified split of the training data)")
    s.add_argument("--valid-fraction", type=float, help="validation fraction carved from training (default 0.2)")
    s.add_argument("--test-file", help="test file the search never sees; reported only")
    s.add_argument("--test-fraction", type=float, help="held-out test fraction (default 0)")
    s.add_argument("--space", help="search space (default dnn): " + _names("space")
                                   + "; or an import path package.module:Class")
    s.add_argument("--strategy", help="search strategy (default model_search): " + _names("strategy")
                                      + "; darts, enas and smash are one-shot (weight-sharing) searches whose derived "
                                      "architecture is then retrained; or an import path package.module:Class")
    s.add_argument("--evaluator", help="how trials are scored (default train; table: a benchmark lookup; synthetic: "
                                       "an instant test objective): " + _names("evaluator")
                                       + "; or an import path package.module:Class")
    s.add_argument("--table", help="benchmark table CSV for --evaluator table")
    s.add_argument("--dataset", help="dataset columns of the table (default cifar10)")
    s.add_argument("--trials", type=int, help="total number of trials wanted (default 20; with --time-budget: "
                                              "as many as fit)")
    s.add_argument("--reproducible", type=int, nargs="?", const=4, metavar="AHEAD",
                   help="tell the strategy results in trial order, asking at most AHEAD (default 4) trials "
                        "ahead: the same --seed gives the same study for any --workers, and after a resume")
    s.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="wall-clock seconds for the whole command, counted from its start: data load, "
                        "baseline, worker start-up, trials and final ensemble")
    s.add_argument("--no-baseline", dest="baseline", action="store_const", const=False,
                   help="do not fit the gradient-boosting baseline on a table")
    s.add_argument("--final-ensemble", dest="final_ensemble", action="store_const", const=True,
                   help="end with a greedy ensemble of the best trials, kept if it ranks above the best "
                        "trial on validation (default with --time-budget)")
    s.add_argument("--no-final-ensemble", dest="final_ensemble", action="store_const", const=False,
                   help="no final ensemble, also with --time-budget")
    s.add_argument("--workers", type=int, help="parallel trials (default: number of cores)")
    s.add_argument("--retries", type=int, help="run a failed trial again up to N times (default 1)")
    s.add_argument("--trial-timeout", type=float, metavar="SECONDS",
                   help="fail (and kill) a trial still running after this long; trials then run in worker processes")
    s.add_argument("--backend", choices=["local", "ray"], help="where trials run (default local: this machine)")
    s.add_argument("--address", help="Ray cluster to use with --backend ray: auto or HOST:PORT "
                                     "(default: start a local Ray instance)")
    s.add_argument("--trial-cpus", type=float, help="CPUs each trial requests from Ray (default 1)")
    s.add_argument("--trial-gpus", type=float, help="GPUs each trial requests from Ray (default 0)")
    s.add_argument("--study", help="study name (default: from data, space and strategy)")
    s.add_argument("--owner", help="owner recorded with a new study")
    _add_storage(s)
    s.add_argument("--root", help="folder for study logs and checkpoints (default: beside the database)")
    s.add_argument("--seed", type=int, help="seed of splits, strategy and trials (default 0)")
    s.add_argument("--epochs", type=int,
                   help="training epochs per trial (default: enough for about 4,000 steps, 10 to 100)")
    s.add_argument("--steps", type=int, help="training steps per trial instead of epochs")
    s.add_argument("--batch-size", type=int, help="training batch size (default 128)")
    s.add_argument("--patience", type=int, help="early-stopping patience in epochs (default 5)")
    s.add_argument("--device", help="cpu (default), cuda or auto")
    s.add_argument("--data-option", action="append", type=_kv, metavar="KEY=VALUE", default=[],
                   help="a data option, e.g. format=sequence or step_labels=true (repeat the flag; VALUE is YAML)")
    s.add_argument("--space-option", action="append", type=_kv, metavar="KEY=VALUE", default=[],
                   help="a space option, e.g. max_depth=3 (repeat the flag; VALUE is YAML); "
                        "`nasforge options SPACE` lists them with their defaults")
    s.add_argument("--strategy-option", action="append", type=_kv, metavar="KEY=VALUE", default=[],
                   help="a strategy option, e.g. population_size=50 (repeat the flag; VALUE is YAML); "
                        "`nasforge options STRATEGY` lists them with their defaults")
    s.add_argument("--order", type=int, choices=[1, 2],
                   help="DARTS: first- or second-order architecture gradient (same as --strategy-option order=N)")
    s.add_argument("--evaluator-option", action="append", type=_kv, metavar="KEY=VALUE", default=[],
                   help="an evaluator option, e.g. for train: lr=0.01, schedule=cosine, augment={flip: true} "
                        "(repeat the flag; VALUE is YAML); `nasforge options EVALUATOR` lists them with their "
                        "defaults (docs/evaluators.md)")
    s.add_argument("--objectives", help="comma-separated metrics to optimise together, each NAME, NAME:max or "
                                        "NAME:min (default directions: accuracy max, costs min), e.g. "
                                        "valid_accuracy,latency_ms; the first is the study's score "
                                        "(docs/objectives.md)")
    s.add_argument("--max-params", type=float, metavar="N", help="never train an architecture with more parameters")
    s.add_argument("--max-flops", type=float, metavar="N",
                   help="never train an architecture with more multiply-accumulates per input")
    s.add_argument("--max-latency-ms", type=float, metavar="MS",
                   help="never train an architecture slower than this, measured on the device before training")
    s.add_argument("--max-peak-memory-mb", type=float, metavar="MB",
                   help="never train an architecture whose inference needs more memory (weights + activations)")
    s.add_argument("--scalarize", metavar="W|NAME=W,...",
                   help="single-objective strategies: score = first objective x prod (cost / limit)^-W over the "
                        "other objectives (MnasNet's soft trade-off)")
    s.add_argument("--latency-option", action="append", type=_kv, metavar="KEY=VALUE", default=[],
                   help="how latency is measured: threads (1), batch_size (1), warmup (10), repeats (30), "
                        "runtime (torch or onnxruntime), device (default: the evaluator's)")
    s.add_argument("--ensemble-schedule", choices=["nonadaptive", "adaptive", "intermixed"],
                   help="add Model Search's ensemble trials during the search (docs/ensembles.md)")
    s.add_argument("--ensemble-option", action="append", type=_kv, metavar="KEY=VALUE", default=[],
                   help="schedule options: pool, width, candidates, every, method, combine")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--top", type=int, default=10, help="leaderboard rows to print (default 10)")

    st = sub.add_parser("studies", help="list studies")
    _add_storage(st)

    t = sub.add_parser("trials", help="leaderboard of a study's trials")
    t.add_argument("--study", required=True)
    _add_storage(t)
    t.add_argument("--format", choices=["table", "csv", "json"], default="table")
    t.add_argument("--top", type=int, help="only the best N")
    t.add_argument("--pareto", action="store_true",
                   help="only the Pareto front of the study's objectives (a single-objective study: its "
                        "objective and params), best on the first objective first")
    t.add_argument("--objectives", help="with --pareto: the objectives of the front instead of the study's, "
                                        "e.g. valid_accuracy,latency_ms")

    sh = sub.add_parser("show", help="everything stored about one trial")
    sh.add_argument("--study", required=True)
    sh.add_argument("--trial", type=int, help="trial number (default: the best)")
    _add_storage(sh)
    sh.add_argument("--replay", metavar="FILE",
                    help="also write a replay file (JSON) that `nasforge train --replay FILE` retrains exactly")
    sh.add_argument("--draw", metavar="FILE", help="also draw the trial's architecture to FILE (.svg or .png)")

    pl = sub.add_parser("plot", help="draw a study's history, curves, cost front or decisions, or a bench run")
    pl.add_argument("--study", help="study to draw (every kind but bench)")
    pl.add_argument("--kind", required=True, choices=list(PLOT_KINDS),
                    help="history (objective and best so far against trial number and time), curves (learning "
                         "curves of --trials), pareto (the front over the study's --objectives, else objective "
                         "against params/FLOPs), importance "
                         "(per-decision share of the objective's variance), parallel (parallel coordinates), "
                         "bench (strategies compared, from --bench DIR)")
    pl.add_argument("--out", required=True, help="image to write: .png or .svg")
    _add_storage(pl)
    pl.add_argument("--trials", help="curves: comma-separated trial numbers (default: the best five)")
    pl.add_argument("--metric", help="curves: the metric to draw (default: the study's objective)")
    pl.add_argument("--bench", metavar="DIR", help="bench: a folder written by `nasforge bench --out`")

    tr = sub.add_parser("train", help="retrain a trial's architecture from scratch (final training), or a replay file")
    tr.add_argument("--study", help="study of the trial (with --replay: the study to store into, default the file's)")
    tr.add_argument("--trial", type=int, help="trial whose architecture to retrain")
    tr.add_argument("--pick", metavar="EXPR", help=PICK_HELP)
    tr.add_argument("--epochs", type=int, help="training epochs (cosine schedule over all of them, no early stopping)")
    _add_storage(tr)
    tr.add_argument("--batch-size", type=int, help="training batch size (default: the study's)")
    tr.add_argument("--lr", type=float, help="learning rate (default: the trial's; wins over a searched one)")
    tr.add_argument("--augment", action="append", type=_kv, metavar="KEY=VALUE", default=[],
                    help="image augmentation: crop_padding=4, flip=true, cutout=16 (repeat the flag)")
    tr.add_argument("--seed", type=int, help="training seed (default: the original trial's)")
    tr.add_argument("--drop-path", type=float, help="nasnet/darts: largest scheduled drop-path probability, reached "
                    "at the last epoch (default: the paper's, 0.4 nasnet, 0.2 darts; 0 off)")
    tr.add_argument("--auxiliary-weight", type=float, help="nasnet/darts: weight of the auxiliary head's loss "
                    "(default: the papers' 0.4; 0 off)")
    tr.add_argument("--refit", action="store_true", help="train on the training and validation splits together "
                    "(for small sets; no validation score is stored); --epochs defaults to the trial's best epoch "
                    "scaled by the larger data")
    tr.add_argument("--replay", metavar="FILE", help="train a replay file written by `nasforge show --replay`")

    pr = sub.add_parser("predict", help="predict with a study's trained model or an exported file")
    pr.add_argument("--study", help="study whose trial predicts (or give --model)")
    pr.add_argument("--model", help="a file written by `nasforge export` (.onnx or TorchScript .pt) instead of "
                                    "a study; ONNX files predict without torch")
    pr.add_argument("--trial", type=int, help="trial number (default: the best)")
    pr.add_argument("--pick", metavar="EXPR", help=PICK_HELP)
    _add_storage(pr)
    pr.add_argument("--data", required=True, help="CSV/TSV file with the training file's feature columns "
                                                  "(image models: .npy/.npz of raw pixels, labels as y in an .npz; a "
                                                  "study's image model also reads image files and class folders), "
                                                  "or builtin:NAME as in search")
    pr.add_argument("--out", help="output CSV (default: standard output)")
    pr.add_argument("--evaluate", action="store_true", help="print the metric (the file must have the label)")
    pr.add_argument("--proba", action="store_true", help="also write class probabilities")

    ex = sub.add_parser("export", help="write a trial as one TorchScript or ONNX file that takes raw inputs")
    ex.add_argument("--study", required=True)
    which = ex.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, help="trial number (default: the best)")
    which.add_argument("--ensemble", type=int, help="an ensemble trial's number: its members, combined")
    which.add_argument("--pick", metavar="EXPR", help=PICK_HELP)
    ex.add_argument("--format", choices=["torchscript", "onnx"],
                    help="file format (default: from --out, .onnx or .pt)")
    ex.add_argument("--out", required=True, help="file to write")
    _add_storage(ex)
    ex.add_argument("--no-check", action="store_true", help="skip comparing the file with the study's model")
    ex.add_argument("--input-dtype", choices=["float64", "float32"], default="float64",
                    help="a tabular model's input type (default float64; float32 for runtimes that feed it)")

    en = sub.add_parser("ensemble", help="store an ensemble of a study's best trials as a trial")
    en.add_argument("--study", required=True)
    _add_storage(en)
    en.add_argument("--method", choices=["average", "weighted", "greedy"], default="greedy",
                    help="average (best --size), weighted (fitted weights over the best --size) or greedy "
                         "(Caruana selection with replacement of --size members among the best --pool; default)")
    en.add_argument("--size", type=int, default=5,
                    help="distinct members, for every method (default 5; at least 2, at most the candidates)")
    en.add_argument("--pool", type=int, default=10, help="candidates: the best N searched trials (default 10)")
    en.add_argument("--combine", choices=["probabilities", "logits"], default="probabilities",
                    help="average class probabilities (default) or logits")
    en.add_argument("--trials", help="comma-separated trial numbers to use as candidates instead of --pool")

    di = sub.add_parser("distill", help="train searched architectures against a teacher trial or ensemble")
    di.add_argument("--study", required=True)
    _add_storage(di)
    who = di.add_mutually_exclusive_group()
    who.add_argument("--teacher", type=int, help="teacher trial (default: the best trial, ensembles included)")
    who.add_argument("--ensemble", type=int, help="teacher ensemble trial (checked to be an ensemble)")
    di.add_argument("--loss", choices=["mse_logits", "mse_softmax", "cross_entropy", "balanced"],
                    default="cross_entropy", help="distillation loss (default cross_entropy)")
    di.add_argument("--temperature", type=float, default=2.0, help="softmax temperature (default 2)")
    di.add_argument("--lambda-min", type=float, default=0.25, help="balanced loss: first trial's lambda")
    di.add_argument("--lambda-max", type=float, default=1.0, help="balanced loss: last trial's lambda")
    di.add_argument("--max-params", type=int, help="students: searched architectures with at most P parameters")
    di.add_argument("--trials", type=int, default=1, help="distillation trials: the best N students (default 1)")
    di.add_argument("--students", help="comma-separated trial numbers whose architectures to distil into")
    di.add_argument("--epochs", type=int, help="training epochs (default: the study's budget)")
    di.add_argument("--top", type=int, default=10, help="leaderboard rows to print (default 10)")

    da = sub.add_parser("dashboard", help="a local, read-only web UI over a store: studies, live leaderboard, plots")
    _add_storage(da)
    da.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    da.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    da.add_argument("--allow-remote", action="store_true",
                    help="allow a non-loopback --host (there is no login: anyone who reaches it sees the store)")

    op = sub.add_parser("options", help="every option of a space, strategy or evaluator, with its default",
                        description="Print the options NAME takes (--space-option, --strategy-option or "
                                    "--evaluator-option KEY=VALUE), read from its constructor; without NAME, "
                                    "list every registered name.")
    op.add_argument("name", nargs="?", metavar="NAME", help="a space, strategy or evaluator name; darts is both a "
                                                              "space and a strategy: both are shown unless --kind")
    op.add_argument("--kind", choices=["space", "strategy", "evaluator"], help="only this kind of NAME")

    b = sub.add_parser("bench", help="compare strategies on a benchmark table (NAS-Bench-201 format)")
    b.add_argument("--table", required=True, help="CSV with arch_str and <dataset>_valid/_test columns")
    b.add_argument("--dataset", default="cifar10", help="dataset columns to use (default cifar10)")
    b.add_argument("--valid-column", help="validation-accuracy column, for a table laid out otherwise "
                   "(default <dataset>_valid; NAS-Bench-201's 200-epoch CSV: valid-accuracy)")
    b.add_argument("--test-column", help="test-accuracy column (default <dataset>_test; 200-epoch CSV: test-accuracy)")
    b.add_argument("--strategies", default=",".join(DEFAULT_BENCH_STRATEGIES),
                   help="comma-separated strategy names (default: the single-objective ones, "
                        f"{','.join(DEFAULT_BENCH_STRATEGIES)})")
    b.add_argument("--queries", type=int, default=100, help="distinct architectures per search (default 100)")
    b.add_argument("--seeds", type=int, default=50, help="searches per strategy (default 50)")
    b.add_argument("--out", required=True, help="folder for summary.csv, curves.csv, curves.png, bench.db")
    b.add_argument("--jobs", type=int, help="parallel processes (default: number of cores)")
    b.add_argument("--proxies", help="proxy CSV (nasforge proxies --out) for the strategies that use proxies")
    px = sub.add_parser("proxies", help="zero-cost proxies of a sample of a space, ranked against a table or a study")
    _add_storage(px)
    px.add_argument("--space", default="nb201", help="search space (default nb201)")
    px.add_argument("--space-option", action="append", type=_kv, metavar="KEY=VALUE", help="space option (repeatable)")
    px.add_argument("--data", help="data the networks see (one minibatch of its training split); "
                    "default: the study's data")
    px.add_argument("--sample", type=int, default=100, help="architectures sampled (default 100)")
    px.add_argument("--table", help="benchmark table (NAS-Bench-201 format) to rank against")
    px.add_argument("--dataset", default="cifar10", help="the table's dataset columns (default cifar10)")
    px.add_argument("--study", help="rank a study's complete trials against their objective instead")
    px.add_argument("--batch-size", type=int, default=64, help="minibatch size (default 64)")
    px.add_argument("--seed", type=int, default=0, help="minibatch, weights and sample seed (default 0)")
    px.add_argument("--out", help="CSV of every architecture's proxies (default: not written)")
    return parser


PICK_HELP = ("the best complete trial meeting conditions like \"latency_ms<5 and params<1e6\" (METRIC OP NUMBER, "
             "OP one of < <= > >= =, joined by 'and') instead of --trial")
PLOT_KINDS = ("history", "curves", "pareto", "importance", "parallel", "bench")
DEFAULT_BENCH_STRATEGIES = ("random", "evolution", "reinforce", "qlearning", "model_search", "local", "bananas")


def main(argv: Sequence[str] | None = None) -> int:
    """`argv` None: the command line of this process, whose start is when a `--time-budget` starts counting;
    a list (called from Python): the call is."""
    import time

    from nasforge.budget import process_started

    started = process_started() if argv is None else time.monotonic()
    parser = build_parser()
    args = parser.parse_args(argv)
    args.started = started
    if not args.command:
        parser.print_help()
        return 2
    try:
        from nasforge.cli import commands

        handler = getattr(commands, f"cmd_{args.command}")
        return int(handler(args) or 0)
    except UserError as exc:
        if args.debug:
            raise
        print(f"nasforge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nasforge: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `nasforge trials | head`: the reader left; no traceback for that
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's exit flush must not fail too
        return 0
