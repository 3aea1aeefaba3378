"""One function per subcommand; each returns an exit code."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from nasforge.cli.search_options import search_options
from nasforge.core.errors import ConfigError
from nasforge.core.ranking import best_key


def cmd_search(args: argparse.Namespace) -> int:
    from nasforge.launch import build_config, run
    from nasforge.report.leaderboard import format_table, rows_for
    from nasforge.storage.sql import Store

    options = search_options(args)
    config = build_config(progress=not args.no_progress and sys.stderr.isatty(), **options)
    schedule = _ensemble_schedule(args, config.seed)
    store = Store(config.storage)
    from nasforge.core import registry
    from nasforge.launch import UNLIMITED_TRIALS

    oneshot = config.strategy in registry.ONESHOT
    wanted = "one-shot search, then its derived architecture retrained" if oneshot else (
        f"{config.trials} trials" if config.trials < UNLIMITED_TRIALS else "trials")
    if config.time_budget is not None:
        wanted += f" within {config.time_budget:g}s"
    print(f"study {config.study!r}: {config.space} space, {config.strategy} strategy, "
          f"{wanted}, objective {config.objective} ({config.direction})", file=sys.stderr)
    summary = run(config, store, ensemble=schedule, started=getattr(args, "started", None))  # see cli.main.main
    study = store.require_study(config.study)
    space = _space(study.config)
    rows = rows_for(study, store.trials(study.id), space, include_all=False)
    print(format_table(rows, limit=args.top))
    if oneshot:
        print(f"\n{summary.complete} complete, {summary.failed} failed: the one-shot trial and the retrained "
              f"architecture ({summary.elapsed:.1f}s this run)")
    else:
        of = f" of {config.trials} wanted" if config.trials < UNLIMITED_TRIALS else ""
        pruned = f", {summary.pruned} pruned by constraints (not trained)" if summary.pruned else ""
        print(f"\n{summary.complete} complete, {summary.failed} failed{of}{pruned} "
              f"({summary.elapsed:.1f}s this run, {summary.reused} duplicate proposals answered from the store)")
    if summary.final is not None:
        print(f"final model: ensemble trial {summary.final} (it ranks above every single trial on validation)")
    _print_baseline(store.require_study(config.study), store)
    if summary.stopped_reason:
        print(summary.stopped_reason, file=sys.stderr)
    print(f"study folder: {study.artifact_dir}")
    print(f"storage: {store.url}")
    return 1 if summary.broken or not summary.complete else 0


def _print_baseline(study: Any, store: Any) -> None:
    """The searched model (the best trial) next to the gradient-boosting baseline, when one is stored."""
    from nasforge.baseline import comparison_lines
    from nasforge.core.types import TrialState

    if not study.baseline:
        return
    complete = [t for t in store.trials(study.id, [TrialState.COMPLETE]) if t.score is not None]
    best = max(complete, key=best_key) if complete else None
    print("\n".join(comparison_lines(study.baseline, best, study.objective)))


def _space(config: dict[str, Any]) -> Any:
    from nasforge.core import registry

    return registry.create("space", config["space"], **config.get("space_config", {}))


def cmd_studies(args: argparse.Namespace) -> int:
    from nasforge.storage.sql import Store

    store = Store(args.storage, create=False) if args.storage else Store(None)
    studies = store.list_studies()
    if not studies:
        print(f"no studies in {store.url}")
        return 0
    head = f"{'name':30} {'owner':12} {'space':10} {'strategy':14} {'complete':>8} {'best':>10}  objective"
    print(head)
    for s in studies:
        best = "-" if s["best"] is None else f"{s['best']:.4f}"
        print(f"{s['name']:30} {s['owner'] or '-':12} {s['space'] or '-':10} {s['strategy'] or '-':14} "
              f"{s['complete']:>8} {best:>10}  {s['objective']}")
    return 0


def cmd_trials(args: argparse.Namespace) -> int:
    from nasforge.api import Study
    from nasforge.report.leaderboard import format_csv, format_json, format_table

    study = Study(args.study, args.storage)
    rows = study.leaderboard()
    if args.objectives and not args.pareto:
        raise ConfigError("--objectives chooses the front's objectives: use it with --pareto")
    if args.pareto:
        front = study.pareto_front(args.objectives.split(",") if args.objectives else None)
        by_number = {r["trial"]: r for r in rows}
        rows = [by_number[t.number] for t in front]
    if args.top:
        rows = rows[: args.top]
    if args.format == "csv":
        sys.stdout.write(format_csv(rows))
    elif args.format == "json":
        print(format_json(rows))
    else:
        print(format_table(rows))
        if study.info.baseline:
            print()
            _print_baseline(study.info, study.store)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from nasforge.api import Study

    if args.replay:
        from nasforge.core.paths import check_output

        check_output(args.replay, "--replay")
    study = Study(args.study, args.storage)
    row = study.trial(args.trial)
    if args.draw:
        from nasforge.report.drawing import draw_trial
        from nasforge.report.plots import check_out

        check_out(args.draw, "--draw")
        drawing = draw_trial(study.space, row, args.draw)
    curve = study.store.intermediate(study.info.id, row.number)
    out = {
        "study": study.name, "trial": row.number, "state": row.state.value, "key": row.key,
        "architecture": row.arch, "summary": _safe_summary(study, row.arch), "metrics": row.metrics,
        "params": row.params, "seed": row.seed, "parent": row.parent, "duration_s": row.duration,
        "started": row.started, "finished": row.finished, "error": row.error, "checkpoint": row.checkpoint,
        "info": row.info, "curve": _curve(curve), "baseline": study.info.baseline,
    }
    if args.replay:
        from nasforge.final import write_replay

        write_replay(study.info, row, args.replay)
    print(json.dumps(out, indent=2, default=str))
    if args.draw:
        nodes = sum(len(g.nodes) for g in drawing.graphs)
        edges = sum(len(g.edges) for g in drawing.graphs)
        print(f"drew trial {row.number} to {args.draw} ({nodes} nodes, {edges} edges)", file=sys.stderr)
    if args.replay:
        print(f"wrote replay file {args.replay} (trial {row.number}); retrain it with "
              f"`nasforge train --replay {args.replay}`", file=sys.stderr)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from nasforge.api import Study, plot_bench
    from nasforge.report.plots import check_out

    check_out(args.out)
    if args.kind == "bench":
        if args.bench is None or args.study is not None:
            raise ConfigError("--kind bench draws a bench folder: give --bench DIR (and no --study)")
        plot_bench(args.bench, args.out)
        print(f"wrote {args.out}: strategies compared from {args.bench}")
        return 0
    if args.study is None or args.bench is not None:
        raise ConfigError(f"--kind {args.kind} draws a study: give --study NAME (--bench is for --kind bench)")
    if (args.trials or args.metric) and args.kind != "curves":
        raise ConfigError("--trials and --metric are options of --kind curves")
    study = Study(args.study, args.storage)
    if args.kind == "curves":
        study.plot_curves(_numbers(args.trials, "--trials"), args.metric, out=args.out)
    else:
        getattr(study, f"plot_{args.kind}")(out=args.out)
    print(f"wrote {args.out}: {args.kind} of study {study.name!r}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from nasforge.api import Study
    from nasforge.final import train_final, train_replay
    from nasforge.storage.sql import Store

    if args.replay:
        given = [flag for flag, value in (("--trial", args.trial), ("--pick", args.pick), ("--epochs", args.epochs),
                                          ("--batch-size", args.batch_size), ("--lr", args.lr),
                                          ("--augment", args.augment or None), ("--seed", args.seed),
                                          ("--drop-path", args.drop_path),
                                          ("--auxiliary-weight", args.auxiliary_weight),
                                          ("--refit", args.refit or None))
                 if value is not None]
        if given:
            raise ConfigError(f"--replay trains the file as written: drop {', '.join(given)}")
        store = Store(args.storage)
        row, created, info = train_replay(store, args.replay, args.study, reporter=EpochLines())
        study = Study(info.name, store=store)
    else:
        chosen = args.trial if args.trial is not None else ("pick" if args.pick else None)
        missing = [flag for flag, value in (("--study", args.study), ("--trial or --pick", chosen),
                                            ("--epochs", args.epochs if not args.refit else 0)) if value is None]
        if missing:
            raise ConfigError(f"train needs {', '.join(missing)} (or --replay FILE)")
        study = Study(args.study, args.storage)
        trial = _picked(study, args)
        assert trial is not None  # --trial or --pick was required above
        row, created = train_final(study.store, study.info, trial, args.epochs, batch_size=args.batch_size,
                                   lr=args.lr, augment=dict(args.augment) or None, seed=args.seed,
                                   reporter=EpochLines(args.epochs), drop_path=args.drop_path,
                                   auxiliary_weight=args.auxiliary_weight, refit=args.refit)
    _print_rows(study, [row.number], None)
    metric = study.info.objective
    test = metric.replace("valid_", "test_", 1)
    shown = ("(refit on train + valid: no validation score)" if row.metrics.get("refit")
             else f"{metric}={row.metrics.get(metric)}")
    shown += f" {test}={row.metrics[test]}" if test in row.metrics else ""
    if row.state.value != "complete":
        print(f"trial {row.number} {row.state.value}: {row.error}", file=sys.stderr)
        return 1
    print(f"{'stored' if created else 'already stored as'} trial {row.number} ({row.info.get('kind')} of "
          f"trial {row.info.get('of')}): {shown}")
    return 0


class EpochLines:
    """One line per finished epoch on stderr, so a long final training shows where it is."""

    SHOWN = ("train_loss", "valid_loss", "valid_accuracy", "valid_perplexity", "valid_rmse", "lr")

    def __init__(self, epochs: int | None = None) -> None:
        self.epochs = epochs
        self.start = time.perf_counter()

    def report(self, step: int, metrics: dict[str, float]) -> None:
        of = f"/{self.epochs}" if self.epochs else ""
        shown = ", ".join(f"{k} {metrics[k]:.4g}" for k in self.SHOWN if k in metrics)
        print(f"epoch {step}{of}: {shown} ({time.perf_counter() - self.start:.0f} s)", file=sys.stderr, flush=True)


def _safe_summary(study: Any, arch: dict[str, Any]) -> str:
    try:
        space = study.space
        return str(space.summary(space.from_json(arch)))
    except Exception:
        return ""


def _curve(points: list[tuple[int, str, float]]) -> list[dict[str, float]]:
    by_step: dict[int, dict[str, float]] = {}
    for step, name, value in points:
        by_step.setdefault(step, {"step": step})[name] = value
    return [by_step[k] for k in sorted(by_step)]


def cmd_predict(args: argparse.Namespace) -> int:
    from nasforge.core.paths import check_output, write_failed

    predictor: Any
    if args.out:
        check_output(args.out)  # before the model is loaded and run
    if args.model is not None:
        if args.study is not None or args.trial is not None or args.storage is not None or args.pick:
            raise ConfigError("--model predicts with an exported file: drop --study, --trial, --pick and --storage")
        from nasforge.export.runtime import load_exported  # no torch for ONNX files

        predictor = load_exported(args.model)
    else:
        if args.study is None:
            raise ConfigError("give --study NAME (a stored study) or --model FILE (an exported model)")
        from nasforge.api import Study

        study = Study(args.study, args.storage)
        predictor = study.predictor(_picked(study, args))
    frame = predictor.read(args.data)
    out = predictor.prediction_frame(frame, proba=args.proba)
    if args.out:
        try:
            out.to_csv(args.out, index=False)
        except OSError as exc:
            raise write_failed(args.out, exc) from exc
        print(f"wrote {len(out)} predictions to {args.out}", file=sys.stderr)
    elif not args.evaluate:
        sys.stdout.write(out.to_csv(index=False))
    if args.evaluate:
        metrics = predictor.evaluate(frame)
        print(" ".join(f"{k}={v:.6f}" for k, v in metrics.items()))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from nasforge.api import Study
    from nasforge.export.exporter import export

    study: Any = args.study
    trial = args.trial
    if args.pick:
        study = Study(args.study, args.storage)
        trial = _picked(study, args)
    report = export(study, out=args.out, format=args.format, trial=trial, ensemble=args.ensemble,
                    storage=args.storage, check=not args.no_check, input_dtype=args.input_dtype)
    what = (f"trial {report.trial}" if report.members == [report.trial]
            else f"ensemble trial {report.trial} (members {report.members})")
    print(f"wrote {report.path}: {report.format}, {what} of study {report.study!r}")
    if args.no_check:
        print("not checked (--no-check)")
    else:
        print(f"max abs diff vs the study's model on {report.sample_size} check inputs: "
              f"{report.max_abs_diff:.3g} (allowed {report.tolerance:g})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from nasforge.bench.compare import format_summary, run_bench

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if not strategies:
        raise ConfigError("--strategies is empty")
    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs must be a positive number (got {args.jobs})")
    summary = run_bench(args.table, args.dataset, strategies, args.queries, args.seeds, args.out, jobs=args.jobs,
                        proxies=args.proxies, valid_column=args.valid_column, test_column=args.test_column)
    print(format_summary(summary))
    print(f"\nwrote {args.out}/summary.csv, curves.csv, curves.png (trials in {args.out}/bench.db)")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from nasforge.dashboard.server import run
    from nasforge.storage.sql import default_storage_url

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0..65535 (got {args.port})")
    return run(args.storage or default_storage_url(), args.host, args.port, args.allow_remote)


def cmd_options(args: argparse.Namespace) -> int:
    from nasforge.core import options

    if not args.name:
        print(options.render_names())
        return 0
    print("\n\n".join(options.render(entry) for entry in options.lookup(args.name, args.kind)))
    return 0


def _ensemble_schedule(args: argparse.Namespace, seed: int) -> Any:
    options = dict(getattr(args, "ensemble_option", None) or [])
    name = getattr(args, "ensemble_schedule", None)
    if name is None:
        if options:
            raise ConfigError("--ensemble-option needs --ensemble-schedule (nonadaptive, adaptive or intermixed)")
        return None
    from nasforge.ensemble.schedule import make_schedule

    return make_schedule(name, options, seed=seed)


def _picked(study: Any, args: argparse.Namespace) -> int | None:
    """`--trial N`, or the trial `--pick EXPR` chooses (said on stderr), or None for the best."""
    if not getattr(args, "pick", None):
        return args.trial  # type: ignore[no-any-return]
    if args.trial is not None:
        raise ConfigError("--pick and --trial both choose the trial: give one of them")
    row = study.pick(args.pick)
    shown = ", ".join(f"{k}={v:.4g}" for k, v in row.metrics.items() if k in (study.info.objective, *(
        c.metric for c in _conditions(args.pick))))
    print(f"--pick {args.pick!r}: trial {row.number} ({shown})", file=sys.stderr)
    return int(row.number)


def _conditions(text: str) -> list[Any]:
    from nasforge.objectives.pick import parse_pick

    return parse_pick(text)


def _numbers(text: str | None, flag: str) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag} must be comma-separated trial numbers, got {text!r}") from None


def _print_rows(study: Any, numbers: list[int], top: int | None) -> None:
    from nasforge.report.leaderboard import format_table

    rows = study.leaderboard()
    print(format_table([r for r in rows if r["trial"] in numbers] or rows, limit=top))


def cmd_ensemble(args: argparse.Namespace) -> int:
    from nasforge.api import Study
    from nasforge.ensemble.build import make_ensemble
    from nasforge.ensemble.members import StudyMembers

    study = Study(args.study, args.storage)
    row, created = make_ensemble(StudyMembers(study.store, study.info), args.method, args.size, args.pool,
                                 args.combine, _numbers(args.trials, "--trials"))
    _print_rows(study, [row.number], None)
    metric = study.info.objective
    print(f"{'stored' if created else 'already stored as'} trial {row.number}: members {row.info['members']}, "
          f"weights {row.info['weights']}, {metric}={row.metrics.get(metric)}")
    if row.info.get("worse_than_member") is not None:
        print(f"note: this ensemble is worse on validation than its member #{row.info['worse_than_member']} "
              f"alone; it is stored, but ranked below that member")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from nasforge.api import Study
    from nasforge.ensemble.distill import distill
    from nasforge.ensemble.members import StudyMembers

    study = Study(args.study, args.storage)
    teacher = args.ensemble if args.ensemble is not None else args.teacher
    rows = distill(StudyMembers(study.store, study.info), teacher=teacher, loss=args.loss,
                   temperature=args.temperature, lambda_min=args.lambda_min, lambda_max=args.lambda_max,
                   max_params=args.max_params, trials=args.trials, students=_numbers(args.students, "--students"),
                   epochs=args.epochs, require_ensemble=args.ensemble is not None)
    if not rows:
        print("nothing new to train: these distillation trials are stored already", file=sys.stderr)
        return 0
    _print_rows(study, [r.number for r in rows], args.top)
    failed = [r for r in rows if r.state.value != "complete"]
    return 1 if len(failed) == len(rows) else 0


def cmd_proxies(args: argparse.Namespace) -> int:
    from nasforge.core import registry
    from nasforge.core.types import TrialState
    from nasforge.data.loader import data_config, load_dataset
    from nasforge.proxies import report

    if args.sample < 1 or args.batch_size < 4:
        raise ConfigError(f"--sample must be positive and --batch-size at least 4 "
                          f"(got {args.sample}, {args.batch_size})")
    if bool(args.table) == bool(args.study):
        raise ConfigError("give either --table (rank a sample against a benchmark) or --study (rank its trials)")
    if args.study:
        from nasforge.storage.sql import Store

        store = Store(args.storage, create=False) if args.storage else Store(None)
        study = store.require_study(args.study)
        space = _space(study.config)
        trials = [t for t in store.trials(study.id, [TrialState.COMPLETE]) if t.score is not None][: args.sample]
        store.dispose()
        if len(trials) < 3:
            raise ConfigError(f"study {args.study!r} has {len(trials)} scored trials; proxies need at least 3 to rank")
        archs = [space.from_json(t.arch) for t in trials]
        targets = [float(t.score) for t in trials if t.score is not None]  # stored oriented: higher is better
        dconf = data_config(args.data) if args.data else study.config.get("evaluator_config", {}).get("data")
        if dconf is None:
            raise ConfigError(f"study {args.study!r} has no data of its own (a table study?): pass --data")
    else:
        if not args.data:
            raise ConfigError("--data is needed with --table (the minibatch the networks see)")
        space = registry.create("space", args.space, **dict(args.space_option or []))
        archs = report.sample_archs(space, args.sample, args.seed)
        targets = report.table_targets(space, archs, args.table, args.dataset)
        dconf = data_config(args.data)
    if args.out:
        parent = Path(args.out).resolve().parent
        if not parent.is_dir():
            raise ConfigError(f"--out {args.out}: folder {parent} does not exist")
    result = report.run(space, load_dataset(dconf), archs, targets, batch_size=args.batch_size, seed=args.seed,
                        out=args.out)
    print(report.format_correlations(result.correlations))
    against = f"table {Path(args.table).name} ({args.dataset} test)" if args.table else f"study {args.study!r}"
    print(f"\n{len(archs)} architectures against {against}; proxies took {result.seconds:.1f} s "
          f"({result.seconds / max(len(archs), 1):.2f} s each)" + (f"; wrote {args.out}" if args.out else ""))
    return 0
