"""recipes/: the shipped CI recipes, checked offline.

Schemas where the engine has one (check-jsonschema's builtin GitHub workflow and GitLab CI
schemas), then a simulation: every shard job of a recipe is run through bash, with the
variables its engine sets in that job (tests/engine_sim.py) and with stub programs on PATH
(funcbench, python, git, apt-get, ...) that only record how they were called. The recorded
`funcbench shard` calls go through funcbench.fleet.engines.shard_spec, as the CLI will: the tasks
must be shards 1..N, each once, with their own results folders, one asv machine, and one merge
(`funcbench merge-results --into results SHARD_DIR...`) that names every shard's folder.
"""
import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from funcbench.fleet.engines import shard_spec

import engine_sim  # noqa: E402  (tests/engine_sim.py)

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
GITHUB, GITLAB = RECIPES / "github-actions.yml", RECIPES / "gitlab-ci.yml"
GITHUB_RELEASES = RECIPES / "github-actions-releases.yml"
SLURM, KUBERNETES = RECIPES / "slurm-array.sbatch", RECIPES / "kubernetes-indexed-job.yaml"
MERGE = ["merge-results", "--into", "results"]
STUBBED = ["funcbench", "python", "python3", "pip", "git", "apt-get", "sudo", "asv", "srun", "sbatch", "kubectl"]
STUB = """#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0])
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps({{"cmd": name, "argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}}) + "\\n")
if name == "git" and sys.argv[1:2] == ["clone"]:
    os.makedirs(sys.argv[-1], exist_ok=True)
"""


def load_yaml(path):
    from ruamel.yaml import YAML  # comes with check-jsonschema; YAML 1.2, so `on:` stays a string
    return list(YAML(typ="safe").load_all(path.read_text()))


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stubs")
    for name in STUBBED:
        path = folder / name
        path.write_text(STUB.format(python=sys.executable))
        path.chmod(0o755)
    return folder


class Sandbox:
    """Runs shell scripts with the stubs first on PATH and a clean environment; returns the calls."""

    def __init__(self, stubs: Path, tmp: Path):
        self.stubs, self.tmp, self.log = stubs, tmp, tmp / "calls.jsonl"
        (tmp / "home").mkdir(exist_ok=True)

    def run(self, script, env, cwd, *, file=None):
        environ = {"PATH": f"{self.stubs}:/usr/bin:/bin", "HOME": str(self.tmp / "home"), "LANG": "C.UTF-8",
                   "STUB_LOG": str(self.log), **{k: str(v) for k, v in env.items()}}
        self.log.write_text("")
        command = ["bash", str(file)] if file else ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script]
        done = subprocess.run(command, env=environ, cwd=cwd, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"exit {done.returncode}\n{script or file}\n{done.stderr}"
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def only(calls, cmd, first=None):
    found = [c for c in calls if c["cmd"] == cmd and (first is None or c["argv"][:len(first)] == first)]
    assert len(found) == 1, (cmd, first, [c["argv"] for c in calls])
    return found[0]


def parse_shard(call):
    """`funcbench shard SPEC [--results-dir D] [--shards N] -- ASV_ARGS`: its parts."""
    argv = call["argv"]
    assert argv[:1] == ["shard"] and "--" in argv, argv
    cut = argv.index("--")
    options, asv_args = argv[2:cut], argv[cut + 1:]
    parsed = dict(zip(options[::2], options[1::2]))
    assert len(options) % 2 == 0 and set(parsed) <= {"--results-dir", "--shards"}, options
    shards = int(parsed["--shards"]) if "--shards" in parsed else None
    return {"spec": argv[1], "results_dir": parsed["--results-dir"], "shards": shards, "asv_args": asv_args,
            "shard": shard_spec(argv[1], environ=call["env"], shards=shards), "cwd": call["cwd"]}


def machine_of(asv_args):
    assert asv_args.count("--machine") == 1, asv_args
    return asv_args[asv_args.index("--machine") + 1]


def check_shards(runs, count):
    """``runs``: the parsed shard call of each simulated job; shards 1..count, each once, and one run."""
    assert sorted(r["shard"].index for r in runs) == list(range(1, count + 1))
    assert {r["shard"].count for r in runs} == {count}
    assert len({r["results_dir"] for r in runs}) == count, "each shard needs its own results folder"
    assert len({tuple(r["asv_args"]) for r in runs}) == 1, "every shard must run the same asv arguments"
    assert runs[0]["asv_args"][0] == "HEAD^!"
    return machine_of(runs[0]["asv_args"])


def check_machine_calls(calls_per_job, machine):
    """Every job describes the machine with the same `asv machine` arguments (so the merge finds
    identical machine.json files), under the name the shard runs use."""
    described = [only(calls, "python", ["-m", "asv", "machine"])["argv"] for calls in calls_per_job]
    assert all(argv == described[0] for argv in described), described
    assert "--yes" in described[0] and machine_of(described[0]) == machine


def asv_python():
    text = (ROOT / "asv.conf.json").read_text()
    return re.search(r'"pythons":\s*\["([^"]+)"\]', text).group(1)


def check_jsonschema(schema, path):
    pytest.importorskip("check_jsonschema")
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
                          capture_output=True, text=True, timeout=120)


# --- GitHub Actions ---------------------------------------------------------------------------

def test_github_workflow_schema(tmp_path):
    done = check_jsonschema("vendor.github-workflows", GITHUB)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "broken.yml"  # the check is not vacuous: a job without runs-on fails it
    broken.write_text(GITHUB.read_text().replace("    runs-on: ubuntu-24.04\n    timeout-minutes: 30\n",
                                                 "    timeout-minutes: 30\n"))
    assert broken.read_text() != GITHUB.read_text()
    assert check_jsonschema("vendor.github-workflows", broken).returncode != 0


EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def substitute(text, context):
    def value(match):
        assert match.group(1) in context, f"the simulation does not know ${{{{ {match.group(1)} }}}}"
        return str(context[match.group(1)])
    return EXPRESSION.sub(value, str(text))


def test_github_workflow_simulated(stubs, tmp_path):
    workflow = load_yaml(GITHUB)[0]
    shard_job, merge_job = workflow["jobs"]["shard"], workflow["jobs"]["merge"]
    matrix = shard_job["strategy"]["matrix"]
    assert list(matrix) == ["shard"], "shard must be the matrix's only dimension: job-total is the count"
    values = matrix["shard"]
    count = len(values)
    assert values == list(range(1, count + 1)) and count >= 2
    assert shard_job["strategy"]["fail-fast"] is False
    for job in (shard_job, merge_job):
        uses = {s["uses"].split("@")[0]: s.get("with", {}) for s in job["steps"] if "uses" in s}
        assert uses["actions/checkout"]["fetch-depth"] == 0
        assert str(uses["actions/setup-python"]["python-version"]) == asv_python()

    sandbox = Sandbox(stubs, tmp_path)
    runs, calls_per_job, artifacts = [], [], {}
    for job_index, value in enumerate(values):  # what GitHub does for each matrix job
        context = {"matrix.shard": value, "strategy.job-index": job_index, "strategy.job-total": count}
        cwd = tmp_path / f"job-{job_index}"
        cwd.mkdir()
        calls = []
        for step in shard_job["steps"]:
            if "run" in step:
                env = {**workflow.get("env", {}), **shard_job.get("env", {}),
                       **{k: substitute(v, context) for k, v in step.get("env", {}).items()}}
                calls += sandbox.run(substitute(step["run"], context), env, cwd)
        run = parse_shard(only(calls, "funcbench", ["shard"]))
        assert run["spec"] == f"{value}/{count}" and run["shard"].source.startswith("command line")
        uploads = [s["with"] for s in shard_job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
        assert len(uploads) == 1
        assert substitute(uploads[0]["path"], context) == run["results_dir"], "upload the shard's results folder"
        artifacts[substitute(uploads[0]["name"], context)] = run
        runs.append(run)
        calls_per_job.append(calls)
    machine = check_shards(runs, count)
    assert machine == workflow["env"]["MACHINE"]
    check_machine_calls(calls_per_job, machine)

    # The merge job: download-artifact puts each artifact in <path>/<artifact name>/.
    assert merge_job["needs"] in ("shard", ["shard"])
    download = next(s["with"] for s in merge_job["steps"] if s.get("uses", "").startswith("actions/download-artifact@"))
    assert all(fnmatch.fnmatch(name, download["pattern"]) for name in artifacts)
    cwd = tmp_path / "merge"
    for name in artifacts:
        (cwd / download["path"] / name).mkdir(parents=True)
    calls = []
    for step in merge_job["steps"]:
        if "run" in step:
            calls += sandbox.run(substitute(step["run"], {}), workflow.get("env", {}), cwd)
    merge = only(calls, "funcbench", ["merge-results"])["argv"]
    assert merge[:3] == MERGE and sorted(merge[3:]) == sorted(f"{download['path']}/{n}" for n in artifacts)
    assert calls.index(only(calls, "python", ["-m", "asv", "publish"])) > calls.index(only(calls, "funcbench"))
    html = [s["with"] for s in merge_job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert [h["path"] for h in html] == ["html"]


def parse_releases_run(call):
    """`funcbench releases --dir D run --build --prune --shard I/N --results-dir R --machine M SPEC...`."""
    argv = call["argv"]
    assert argv[:3] == ["releases", "--dir", argv[2]] and argv[3] == "run", argv
    rest, options, specs = argv[4:], {}, []
    while rest:
        head = rest.pop(0)
        if head in ("--build", "--prune"):
            options[head] = True
        elif head.startswith("--"):
            options[head] = rest.pop(0)
        else:
            specs.append(head)
    assert {"--build", "--prune", "--shard", "--results-dir", "--machine"} <= set(options), options
    return {"dir": argv[2], "spec": options["--shard"], "results_dir": options["--results-dir"],
            "machine": options["--machine"], "specs": specs, "shard": shard_spec(options["--shard"], environ=call["env"])}


def test_github_releases_workflow_schema():
    done = check_jsonschema("vendor.github-workflows", GITHUB_RELEASES)
    assert done.returncode == 0, done.stdout + done.stderr


def test_github_releases_workflow_simulated(stubs, tmp_path):
    workflow = load_yaml(GITHUB_RELEASES)[0]
    shard_job, merge_job = workflow["jobs"]["shard"], workflow["jobs"]["merge"]
    values = shard_job["strategy"]["matrix"]["shard"]
    count = len(values)
    assert list(shard_job["strategy"]["matrix"]) == ["shard"] and values == list(range(1, count + 1))
    assert shard_job["strategy"]["fail-fast"] is False
    sandbox = Sandbox(stubs, tmp_path)
    runs, calls_per_job, artifacts = [], [], {}
    for job_index, value in enumerate(values):
        context = {"matrix.shard": value, "strategy.job-index": job_index, "strategy.job-total": count}
        cwd = tmp_path / f"job-{job_index}"
        (cwd / ".releases" / "state").mkdir(parents=True)
        (cwd / ".releases" / "state" / "2.0.1.json").write_text("{}")  # what the run would have recorded
        calls = []
        for step in shard_job["steps"]:
            if "run" in step:
                calls += sandbox.run(substitute(step["run"], context), workflow.get("env", {}), cwd)
        run = parse_releases_run(only(calls, "funcbench", ["releases"]))
        assert run["spec"] == f"{value}/{count}" and run["shard"].index == value
        assert (cwd / run["results_dir"] / "state" / "2.0.1.json").is_file(), "the records travel with the results"
        upload = next(s["with"] for s in shard_job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@"))
        assert substitute(upload["path"], context) == run["results_dir"]
        artifacts[substitute(upload["name"], context)] = run
        runs.append(run)
        calls_per_job.append(calls)
    assert sorted(r["shard"].index for r in runs) == list(range(1, count + 1))
    assert len({r["results_dir"] for r in runs}) == count
    assert len({(r["machine"], tuple(r["specs"]), r["dir"]) for r in runs}) == 1, "every shard plans the same pairs"
    assert runs[0]["machine"] == workflow["env"]["MACHINE"] and runs[0]["specs"] == [workflow["env"]["RELEASES"]]
    check_machine_calls(calls_per_job, runs[0]["machine"])
    download = next(s["with"] for s in merge_job["steps"] if s.get("uses", "").startswith("actions/download-artifact@"))
    assert all(fnmatch.fnmatch(name, download["pattern"]) for name in artifacts)
    cwd = tmp_path / "merge"
    for name in artifacts:
        (cwd / download["path"] / name / "state").mkdir(parents=True)
        (cwd / download["path"] / name / "state" / "2.0.1.json").write_text("{}")
    calls = []
    for step in merge_job["steps"]:
        if "run" in step:
            calls += sandbox.run(substitute(step["run"], {}), workflow.get("env", {}), cwd)
    merge = only(calls, "funcbench", ["merge-results"])["argv"]
    assert merge[:3] == ["merge-results", "--into", f"{runs[0]['dir']}/results"]
    assert sorted(merge[3:]) == sorted(f"{download['path']}/{n}" for n in artifacts)
    publish = only(calls, "funcbench", ["releases", "--dir", runs[0]["dir"], "publish"])
    assert calls.index(publish) > calls.index(only(calls, "funcbench", ["merge-results"]))
    assert (cwd / runs[0]["dir"] / "state" / "2.0.1.json").is_file(), "publish needs the records (the commits' dates)"


# --- GitLab CI --------------------------------------------------------------------------------

def test_gitlab_ci_schema():
    done = check_jsonschema("vendor.gitlab-ci", GITLAB)
    assert done.returncode == 0, done.stdout + done.stderr


def flatten(script):
    """A GitLab script: nested lists (from anchors) flattened, as GitLab does."""
    for line in script:
        yield from (flatten(line) if isinstance(line, list) else [line])


def test_gitlab_ci_simulated(stubs, tmp_path):
    pipeline = load_yaml(GITLAB)[0]
    shard_job, merge_job = pipeline["shard"], pipeline["merge"]
    count = shard_job["parallel"]
    assert isinstance(count, int) and count >= 2
    assert pipeline["variables"]["GIT_DEPTH"] == "0"
    assert pipeline["default"]["image"] == f"python:{asv_python()}"
    sandbox = Sandbox(stubs, tmp_path)
    variables = {**pipeline["variables"], **shard_job.get("variables", {})}
    runs, calls_per_job = [], []
    for job_index, env in enumerate(engine_sim.gitlab_envs(count)):
        cwd = tmp_path / f"job-{job_index}"
        cwd.mkdir()
        calls = sandbox.run("\n".join(flatten(shard_job["script"])), {**variables, **env}, cwd)
        run = parse_shard(only(calls, "funcbench", ["shard"]))
        assert run["spec"] == "auto" and run["shard"].source.startswith("GitLab parallel")
        assert any(Path(run["results_dir"]).is_relative_to(p.rstrip("/")) for p in shard_job["artifacts"]["paths"])
        runs.append(run)
        calls_per_job.append(calls)
    machine = check_shards(runs, count)
    assert machine == pipeline["variables"]["MACHINE"]
    check_machine_calls(calls_per_job, machine)

    assert merge_job["needs"] == ["shard"]  # every job of shard's parallel:, with its artifacts
    cwd = tmp_path / "merge"
    for run in runs:  # the artifacts of every shard job, extracted into the merge job's checkout
        (cwd / run["results_dir"]).mkdir(parents=True)
    calls = sandbox.run("\n".join(flatten(merge_job["script"])), pipeline["variables"], cwd)
    merge = only(calls, "funcbench", ["merge-results"])["argv"]
    assert merge[:3] == MERGE and sorted(merge[3:]) == sorted(r["results_dir"] for r in runs)
    assert calls.index(only(calls, "python", ["-m", "asv", "publish"])) > calls.index(only(calls, "funcbench"))
    assert merge_job["artifacts"]["paths"] == ["html/"]


# --- Slurm ------------------------------------------------------------------------------------

def test_slurm_script_parses():
    done = subprocess.run(["bash", "-n", str(SLURM)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def slurm_array_spec():
    specs = re.findall(r"^#SBATCH --array=(\S+)$", SLURM.read_text(), re.M)
    assert len(specs) == 1, specs
    return specs[0]


@pytest.mark.parametrize("spec", [None, "0-4", "2-10:4", "1-3%1"])  # None: the script's own --array
def test_slurm_array_simulated(stubs, tmp_path, spec):
    spec = spec or slurm_array_spec()
    text = SLURM.read_text()
    submit = tmp_path / "checkout"
    submit.mkdir()
    sandbox = Sandbox(stubs, tmp_path)
    runs, envs = [], engine_sim.slurm_array_envs(spec)
    for env in envs:  # each array task, as slurmd starts it: the script, in the submit folder
        scratch = tmp_path / f"node-{env['SLURM_ARRAY_TASK_ID']}"
        scratch.mkdir()
        calls = sandbox.run(None, {**env, "SLURM_SUBMIT_DIR": submit, "TMPDIR": scratch}, submit, file=SLURM)
        run = parse_shard(only(calls, "funcbench", ["shard"]))
        assert run["spec"] == "auto" and run["shard"].source.startswith("Slurm job array")
        assert Path(run["results_dir"]) == submit / "shards" / env["SLURM_ARRAY_TASK_ID"]
        # Each task works in its own clone on node-local disk (its own .asv/env), not in the checkout.
        assert Path(run["cwd"]).is_relative_to(scratch)
        assert only(calls, "git", ["clone"])["argv"][-2:] == [str(submit), run["cwd"]]
        runs.append(run)
    machine = check_shards(runs, len(envs))

    # The header: `asv machine` once, the array, and the dependent merge job.
    assert f"python -m asv machine --yes --machine {machine}" in text
    assert "JOBID=$(sbatch --parsable recipes/slurm-array.sbatch)" in text
    assert "--dependency=afterok:$JOBID" in text
    wrap = re.search(r"--wrap '([^']*)'", text).group(1)
    for run in runs:  # what the tasks wrote
        Path(run["results_dir"]).mkdir(parents=True)
    calls = sandbox.run(wrap, {}, submit)  # sbatch --wrap runs in the submit folder
    merge = only(calls, "funcbench", ["merge-results"])["argv"]
    assert merge[:3] == MERGE and sorted(merge[3:]) == sorted(f"shards/{e['SLURM_ARRAY_TASK_ID']}" for e in envs)
    assert calls[-1]["argv"] == ["-m", "asv", "publish"]


@pytest.mark.parametrize("spec", ["1,3,4", "0-3,8"])
def test_slurm_array_that_is_not_one_range_fails_every_task(stubs, tmp_path, spec):
    sandbox = Sandbox(stubs, tmp_path)
    for env in engine_sim.slurm_array_envs(spec):
        calls = sandbox.run(None, {**env, "SLURM_SUBMIT_DIR": tmp_path, "TMPDIR": tmp_path}, tmp_path, file=SLURM)
        with pytest.raises(ValueError, match="SLURM_ARRAY_TASK_"):
            parse_shard(only(calls, "funcbench", ["shard"]))


# --- Kubernetes -------------------------------------------------------------------------------

def kubernetes_documents():
    documents = load_yaml(KUBERNETES)
    jobs = [d for d in documents if d["kind"] == "Job"]
    assert len(jobs) == 1
    return jobs[0], {d["metadata"]["name"]: d for d in documents if d["kind"] == "PersistentVolumeClaim"}


def test_kubernetes_manifest():
    job, claims = kubernetes_documents()
    assert job["apiVersion"] == "batch/v1"
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] >= 2
    assert pod["restartPolicy"] in ("Never", "OnFailure")
    (container,) = pod["containers"]
    assert container["image"] == f"python:{asv_python()}"
    script = container["args"][0]
    assert container["command"] == ["bash", "-c"] and len(container["args"]) == 1
    # The kubelet rewrites $(VAR) and $$ in command and args; the script must reach bash as written.
    for text in container["command"] + container["args"]:
        assert "$(" not in text and "$$" not in text
    line = re.search(r"funcbench shard .*?-- [^\n]*", script.replace("\\\n", " "), re.S).group()
    assert f"--shards {spec['completions']}" in line
    results = re.search(r'--results-dir "([^"]+)"', line).group(1)
    assert "$JOB_COMPLETION_INDEX" in results
    # The results are written to a volume shared by all pods: a ReadWriteMany claim in this file.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    (volume,) = [v for v in pod["volumes"] if results.startswith(mounts[v["name"]].rstrip("/") + "/")]
    claim = claims[volume["persistentVolumeClaim"]["claimName"]]
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    text = KUBERNETES.read_text()
    assert "kubectl wait --for=condition=complete job/" + job["metadata"]["name"] in text
    assert re.search(rf"funcbench merge-results --into results {re.escape(mounts[volume['name']])}/shard-\*", text)


def test_kubernetes_indexed_job_simulated(stubs, tmp_path):
    job, _ = kubernetes_documents()
    completions = job["spec"]["completions"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    declared = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    sandbox = Sandbox(stubs, tmp_path)
    runs, calls_per_pod = [], []
    for pod_env in engine_sim.kubernetes_envs(completions):  # the Job controller's pods
        cwd = tmp_path / f"pod-{pod_env['JOB_COMPLETION_INDEX']}"
        cwd.mkdir()
        calls = sandbox.run(container["args"][0], {**declared, **pod_env}, cwd)
        run = parse_shard(only(calls, "funcbench", ["shard"]))
        assert run["spec"] == "auto" and run["shards"] == completions
        assert run["shard"].source.startswith("Kubernetes Indexed Job")
        assert run["results_dir"] == f"/results/shard-{pod_env['JOB_COMPLETION_INDEX']}"
        runs.append(run)
        calls_per_pod.append(calls)
    machine = check_shards(runs, completions)
    assert machine == declared["MACHINE"]
    check_machine_calls(calls_per_pod, machine)
    # Without --shards, auto has no count: the pods would fail with one line saying so.
    call = only(calls_per_pod[0], "funcbench", ["shard"])
    with pytest.raises(ValueError, match="--shards N"):
        shard_spec("auto", environ=call["env"])


# --- all recipes ------------------------------------------------------------------------------

def test_recipes_folder_holds_what_is_tested():
    assert sorted(p.name for p in RECIPES.iterdir()) == sorted(p.name for p in (GITHUB, GITHUB_RELEASES, GITLAB, SLURM,
                                                                                KUBERNETES))
