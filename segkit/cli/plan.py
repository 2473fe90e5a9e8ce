"""`segkit plan DATASET`: fingerprint the dataset and write plans.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from segkit.cli.datasets import add_dataset_argument
from segkit.cli.options import add_network_option


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the plan subcommand."""
    parser = subparsers.add_parser("plan", help="fingerprint a dataset and plan its configurations",
                                   description="Fingerprint DATASET and write fingerprint.json and plans.json.")
    add_dataset_argument(parser, "raw dataset folder (nnU-Net v2 layout; see `segkit convert`)")
    parser.add_argument("--work-dir", help="output folder (default: see docs/environment.md)")
    parser.add_argument("-j", "--num-workers", type=int, default=1, help="worker processes for the fingerprint")
    parser.add_argument("--gpu-memory", type=float, help="memory budget in GB (default: the CUDA device's, else 8)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="what to plan for: auto = the CUDA GPU found here, else this CPU; cuda = a GPU of "
                             "--gpu-memory GB, priced with the CUDA memory model plus a reserve for context, cuDNN "
                             "workspace and fragmentation (works on a CPU-only machine); cpu = this CPU")
    add_network_option(parser, "auto: revmbconv when planning for a GPU budget, unet for this CPU")
    parser.add_argument("--configurations", nargs="+", default=["3d_fullres", "2d", "3d_lowres"],
                        choices=("3d_fullres", "2d", "3d_lowres", "3d_cascade_fullres"),
                        help="3d_lowres (planned only for images much larger than the patch) brings "
                             "3d_cascade_fullres with it")
    parser.add_argument("--max-depth-multiplier", type=int, default=2,
                        help="cap on how much deeper than the default the planner may go with spare memory")
    parser.add_argument("--max-width-multiplier", type=float, default=2.0,
                        help="cap on how much wider than the default the planner may go with spare memory")
    parser.add_argument("--verify", action="store_true", help="run `segkit verify` checks first")
    parser.add_argument("--force", action="store_true", help="recompute fingerprint.json even if present")
    parser.add_argument("--no-tradeoff", action="store_true", help="skip the reversible-vs-plain trade-off table")
    parser.add_argument("--like", metavar="SOURCE",   # [finetune]
                        help="adopt the network, patch, spacing and normalisation of SOURCE (plans.json, work dir, "
                             "model folder or model package .zip) and re-plan outputs and batch (docs/fine-tuning.md)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Fingerprint (or reuse the fingerprint), plan, write, print the summary."""
    from segkit.planning.run import plan_and_write
    from segkit.workdir import fingerprint_path, plans_path

    if args.like:   # [finetune] plan like another dataset's plan / model
        from segkit.errors import UserError
        from segkit.planning.like import plan_like_and_write

        if args.network != "auto":
            raise UserError("--like takes the network from SOURCE; drop --network")
        _plans, work_dir, summary = plan_like_and_write(
            Path(args.dataset), args.like, work_dir=args.work_dir, num_workers=args.num_workers,
            gpu_memory_gb=args.gpu_memory, configurations=tuple(args.configurations), force=args.force,
            verify=args.verify, device=args.device)
        print(summary)
        print(f"\nwrote {fingerprint_path(work_dir)} and {plans_path(work_dir)}")
        return 0
    plans, work_dir, summary = plan_and_write(
        Path(args.dataset), work_dir=args.work_dir, num_workers=args.num_workers, gpu_memory_gb=args.gpu_memory,
        network=args.network, configurations=tuple(args.configurations), verify=args.verify, force=args.force,
        max_depth_multiplier=args.max_depth_multiplier, max_width_multiplier=args.max_width_multiplier,
        tradeoff=not args.no_tradeoff, device=args.device)
    print(summary)
    print(f"\nwrote {fingerprint_path(work_dir)} and {plans_path(work_dir)}")
    return 0
