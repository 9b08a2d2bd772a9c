"""Sphinx-gallery image scraper for examples that write their figures to files.

The examples save their figures in the folder given by ``--output`` (set per
example in ``conf.py``) and close them; this scraper collects the PNG files
written there since the last code block and adds them to the gallery page.
"""

import shutil
from pathlib import Path

from sphinx_gallery.scrapers import figure_rst

_seen = set()


def example_arguments(gallery_conf, script_vars):
    """Command-line arguments of an example in the gallery: its own output folder."""
    stem = Path(script_vars["src_file"]).stem
    return ["--output", str(_output_folder(gallery_conf, stem))]


def _output_folder(gallery_conf, stem):
    return Path(gallery_conf["src_dir"]) / "_build" / "example_output" / stem


def written_figures(block, block_vars, gallery_conf):
    """Copy new PNGs of this example's output folder next to the gallery page."""
    source = Path(block_vars["src_file"])
    folder = _output_folder(gallery_conf, source.stem)
    targets = []
    if folder.exists():
        names = block_vars["image_path_iterator"]
        for png in sorted(folder.glob("*.png")):
            key = (source.stem, png.name, png.stat().st_mtime)
            if key in _seen:
                continue
            _seen.add(key)
            target = next(names)
            shutil.copyfile(png, target)
            targets.append(target)
    return figure_rst(targets, gallery_conf["src_dir"])
