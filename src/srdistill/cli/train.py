"""``train.py``: distil a student from a frozen teacher; writes results.json in the run folder."""

from __future__ import annotations

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from srdistill.cli import sweep
from srdistill.cli.builders import build_module
from srdistill.cli.common import exit_on_user_error, model_choice
from srdistill.cli.control import build_control
from srdistill.cli.final_table import comparison_table, where_line
from srdistill.cli.log_setup import one_copy_of_lightning_logs
from srdistill.cli.preflight import preflight
from srdistill.cli.stages import quiet_expected_warnings, run_dir, train_arm
from srdistill.outputs import write_json
from srdistill.training import wandb_run
from srdistill.training.checkpointing import exit_terminated


def run(cfg: DictConfig) -> dict:
    """Fit (and the control arm when asked), compare, write and return ``results.json``."""
    quiet_expected_warnings()
    one_copy_of_lightning_logs()
    # seeded before the loss is built: its heads start from the seed like the networks
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    stages, loss = preflight(cfg)
    first_dataset = instantiate(stages[0].data.train)  # the data is checked before any network
    module = build_module(cfg, loss)
    control_cfg, control = build_control(cfg, module)
    results, trainer, datamodule = train_arm(cfg, module, first_dataset)
    if control is not None:
        results["without_teacher"] = train_arm(control_cfg, control, first_dataset)[0]
    if not trainer.is_global_zero:
        return results
    if cfg.final_table:
        names = tuple(cfg.get("final_table_models") or ("bicubic", "teacher", "student"))
        results["comparison"], table = comparison_table(
            module, datamodule, cfg.scale, names, control, seed=cfg.seed
        )
        print(table)
        best = trainer.checkpoint_callback.best_model_path or None
        own = None if module.build_record.get("model") else model_choice("model@student.arch")
        print(where_line(run_dir(cfg), best, own))
    # strict JSON: a non-finite metric is null, never a bare NaN other readers reject
    write_json(run_dir(cfg) / "results.json", results, "results.json")
    wandb_run.report_final(cfg, trainer.loggers, module, results)
    return results


def main_from_cfg(cfg: DictConfig) -> float | sweep.JobFailure:
    """Returns the first validation set's PSNR, the value Hydra sweepers optimise. A failed job
    of a sweep returns its failure, so that the sweep runs the other jobs (cli/sweep.py)."""
    if sweep.in_sweep():
        return sweep.run_job(train_and_score, cfg)
    return exit_on_user_error(train_and_score)(cfg)


def train_and_score(cfg: DictConfig) -> float:
    """One run; its W&B run, if any, is closed as failed when the run fails."""
    try:
        results = run(cfg)
    except SIGTERMException:  # Lightning stops at a step boundary; LastCheckpoint saved it
        wandb_run.finish_active_run(failed=True)
        exit_terminated(run_dir(cfg) / "checkpoints" / "last.ckpt")
    except BaseException:
        wandb_run.finish_active_run(failed=True)
        raise
    wandb_run.finish_active_run()
    return float(results["val"].get(f"val/{cfg.val.sets[0]}/psnr_y", float("nan")))
