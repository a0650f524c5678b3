"""``funcbench publish``: asv publish, then the dashboard made self-contained (funcbench/results/dashboard.py)."""
from __future__ import annotations

from pathlib import Path

from funcbench.fleet.asv_driver import Asv, AsvError
from funcbench.results import profiles
from funcbench.results.dashboard import DashboardError, make_self_contained, serve, vendor_archive
from funcbench.util.text import first_line
from funcbench.commands.common import UsageError

NAME = "publish"
HELP = "asv publish, then a dashboard that opens with no network (asv-tachyon's page and asv's own)"


def add_arguments(parser) -> None:
    parser.add_argument("--config", default="asv.conf.json", help="asv.conf.json to publish (default ./asv.conf.json)")
    parser.add_argument("--serve", action="store_true", help="then serve the dashboard on 127.0.0.1 until Ctrl-C")
    parser.add_argument("--port", type=int, default=8080,
                        help="the port --serve listens on (default 8080; 0: any free)")


def run(args) -> int:
    return publish(Path(args.config), args.serve, args.port)


def publish(config: Path, serve_it: bool = False, port: int = 8080) -> int:
    """``asv publish``, then the dashboard made self-contained; 2 with one line when it cannot be.
    First the counts' profiles an ``asv run`` not made by funcbench left unfiled (dev.py's main
    job runs asv itself) are filed beside their results files, so the tree published is whole."""
    try:
        asv = Asv(config)
        profiles.file(asv.results_dir)
        archive = vendor_archive()
        asv("publish")
        html = asv.html_dir
        pages = make_self_contained(html, archive)
    except (AsvError, DashboardError) as error:
        raise UsageError(first_line(error)) from None
    print(f"dashboard: {pages[0]} (asv's own page: {pages[1]}); nothing in it loads from outside {html}")
    if serve_it:
        try:
            serve(html, port=port)
        except OSError as error:
            raise UsageError(f"cannot serve on 127.0.0.1:{port}: {error.strerror}") from None
        except KeyboardInterrupt:
            pass
    return 0
