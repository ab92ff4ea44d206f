"""python -m train [flags]  |  accelerate launch [--multi_gpu] -m train [flags]  |  python -m train export ...  |
python -m train bench ..."""

from __future__ import annotations

import argparse
import sys


def export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train export",
        description="Export a checkpoint as a generator folder (config.json, model.safetensors, training_config.json, "
                    "evaluation.json/.md/.png, README.md model card), loadable by Translator.from_pretrained.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True,
                   help="a checkpoint folder (OUTPUT_DIR/checkpoints/checkpoint-NNNNNN), or a run folder for its latest")
    p.add_argument("--output", required=True, help="folder to write (replaced atomically if it exists)")
    p.add_argument("--export-half", action="store_true", help="store float16 weights")
    p.add_argument("--val-data", nargs="+", metavar="ROOT",
                   help="score on the validation split (the run's --val-split) of these roots instead of the run's own")
    p.add_argument("--no-ema", action="store_true", help="export the trained generator even if the run kept an EMA")
    p.add_argument("--device", default="cpu", help="device for the evaluation")
    p.add_argument("--push-to-hub", metavar="REPO_ID", help="upload the exported folder to this Hub model repo")
    p.add_argument("--hub-private", action="store_true")
    return p


def export_main(argv: list[str]) -> int:
    from irvis.hub import check_push_ready, push_or_report
    from train.export import export_checkpoint

    args = export_parser().parse_args(argv)
    if args.push_to_hub:
        check_push_ready(args.push_to_hub)
    export_checkpoint(args.checkpoint, args.output, half=args.export_half, val_data=args.val_data,
                      use_ema=not args.no_ema, device=args.device, repo_id=args.push_to_hub)
    print(f"exported to {args.output}")
    if args.push_to_hub and not push_or_report(args.output, args.push_to_hub, args.hub_private):
        return 1
    return 0


def train_main(argv: list[str]) -> int:
    from train.config import from_args
    from train.loop import Trainer

    trainer = Trainer(from_args(argv))
    trainer.train()
    return 1 if trainer.push_failed else 0


def main(argv: list[str] | None = None) -> int:
    from irvis.data import DataError
    from irvis.hub import HubError
    from irvis.images import ImageError
    from irvis.nets import WeightsError
    from train.config import ConfigError, print_once

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["export"]:
            return export_main(argv[1:])
        if argv[:1] == ["bench"]:
            from train.bench import main as bench_main

            return bench_main(argv[1:])
        return train_main(argv)
    except (DataError, ConfigError, WeightsError, ImageError, HubError) as e:
        print_once(f"error: {e}")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
