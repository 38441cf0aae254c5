"""`make package`: a complete CloudFormation/SAM stack in build/package (sam.json + deployment.zip).

    python -m deploy.package [--stage prod] [--out build/package]

1. Writes the merge template (deploy/template.py, from chalicelib/resources.py) to
   build/merge-template.json.
2. Stages the web UI into vendor/web/ (Chalice puts vendor/ at the root of the zip, where
   app.py looks for web/), runs `chalice package --merge-template`, removes vendor/web/ again.
3. Checks the result: every function got the environment, the template holds the resources.

Needs PyPI (Chalice downloads manylinux wheels for the Lambda runtime); no AWS access.
See docs/deploy.md for the commands that follow (aws cloudformation package/deploy).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import template as tmpl

ROOT = tmpl.ROOT
BUILD = ROOT / "build"
WEB = ROOT / "web"
VENDOR = ROOT / "vendor"


def stage_web() -> Path:
    target = VENDOR / "web"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(WEB, target, ignore=shutil.ignore_patterns(".*", "__pycache__"))
    return target


def unstage_web(created_vendor: bool) -> None:
    shutil.rmtree(VENDOR / "web", ignore_errors=True)
    if created_vendor and VENDOR.is_dir() and not any(VENDOR.iterdir()):
        VENDOR.rmdir()


def run_chalice(stage: str, merge_template: Path, out: Path) -> None:
    env = dict(os.environ)
    # Chalice wants a region even to package; nothing region-specific ends up in the template.
    env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", "us-east-1"))
    command = [sys.executable, "-c", "import sys; from chalice.cli import main; sys.exit(main())",
               "package", "--stage", stage, "--pkg-format", "cloudformation", "--template-format", "json",
               "--merge-template", str(merge_template), str(out)]
    subprocess.run(command, cwd=ROOT, env=env, check=True)


def check(out: Path, functions: list[tmpl.Function], merge: dict) -> dict:
    template = json.loads((out / "sam.json").read_text())
    resources = template["Resources"]
    chalice_functions = {k for k, v in resources.items() if v.get("Type") == "AWS::Serverless::Function"}
    expected = {fn.logical_id for fn in functions}
    if chalice_functions != expected:
        raise tmpl.TemplateError(f"Chalice made functions {sorted(chalice_functions)}, the merge template "
                                 f"configured {sorted(expected)}")
    for fn in functions:
        variables = resources[fn.logical_id]["Properties"]["Environment"]["Variables"]
        missing = set(merge["Resources"][fn.logical_id]["Properties"]["Environment"]["Variables"]) - set(variables)
        if missing:
            raise tmpl.TemplateError(f"{fn.logical_id}: environment lacks {sorted(missing)}")
    if not (out / "deployment.zip").is_file():
        raise tmpl.TemplateError("chalice package wrote no deployment.zip")
    return template


def package(stage: str = tmpl.DEFAULT_STAGE, out: Path = BUILD / "package") -> Path:
    functions = tmpl.app_functions()
    merge_path = BUILD / f"merge-template-{stage}.json"
    merge = tmpl.write(merge_path, stage=stage)
    if out.exists():
        shutil.rmtree(out)
    created_vendor = not VENDOR.exists()
    stage_web()
    try:
        run_chalice(stage, merge_path, out)
    finally:
        unstage_web(created_vendor)
    check(out, functions, merge)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.package", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default=tmpl.DEFAULT_STAGE)
    parser.add_argument("--out", type=Path, default=BUILD / "package")
    args = parser.parse_args(argv)
    try:
        out = package(args.stage, args.out.resolve())
    except (tmpl.TemplateError, subprocess.CalledProcessError) as exc:
        print(f"packaging failed: {exc}", file=sys.stderr)
        return 1
    rel = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f"\nStack written to {rel}/sam.json with {rel}/deployment.zip.\n"
          "Next (see docs/deploy.md):\n"
          f"  aws cloudformation package --template-file {rel}/sam.json --s3-bucket <artifact bucket> "
          f"--output-template-file {rel}/packaged.json --use-json\n"
          f"  aws cloudformation deploy --template-file {rel}/packaged.json --stack-name imgbatch "
          "--capabilities CAPABILITY_IAM")
    return 0


if __name__ == "__main__":
    sys.exit(main())
