"""Every file shipped under infra/ is loaded: YAML parsed, TOML resolved by flywheel.config.load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from flywheel import config as cfg
from flywheel.cronspec import cron_problem

INFRA = Path(__file__).resolve().parents[2] / "infra"
YAMLS = sorted([*INFRA.rglob("*.yml"), *INFRA.rglob("*.yaml")])
TOMLS = sorted(INFRA.rglob("*.toml"))
ROLL_VLLM = INFRA / "hooks" / "roll_vllm.py"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _k8s(kind: str) -> list[dict[str, Any]]:
    return [d for p in (INFRA / "k8s").glob("*.yaml") for d in _docs(p) if d.get("kind") == kind]


def test_every_shipped_file_is_covered() -> None:
    known = {*YAMLS, *TOMLS, INFRA / "Dockerfile", INFRA / "README.md", ROLL_VLLM}
    shipped = {p for p in INFRA.rglob("*") if p.is_file()}
    assert shipped == known, f"files no test loads: {sorted(shipped - known)}"
    assert len(YAMLS) >= 10 and len(TOMLS) >= 2


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: str(p.relative_to(INFRA)))
def test_yaml_parses(path: Path) -> None:
    docs = _docs(path)
    assert docs and all(isinstance(d, dict) for d in docs)


@pytest.mark.parametrize("path", TOMLS, ids=lambda p: str(p.relative_to(INFRA)))
def test_toml_is_a_valid_flywheel_config(path: Path) -> None:
    config = cfg.load(path, env={})  # unknown keys or bad values raise ConfigError
    assert config.paths.lake.startswith("/data")
    assert cron_problem(config.scheduler.cron, config.scheduler.timezone) is None


def test_config_maps_hold_valid_configs(tmp_path: Path) -> None:
    maps = [m for m in _k8s("ConfigMap") if "config.toml" in m["data"]]
    assert maps
    for m in maps:
        f = tmp_path / "config.toml"
        f.write_text(m["data"]["config.toml"])
        config = cfg.load(f, env={})
        assert config.kafka.security_protocol == "SASL_SSL" and config.kafka.sasl_plain_password is None
    prom = next(m for m in _k8s("ConfigMap") if "prometheus.yml" in m["data"])
    assert yaml.safe_load(prom["data"]["prometheus.yml"])["scrape_configs"]


def test_production_example_uses_sasl_ssl_without_secrets() -> None:
    prod = cfg.load(INFRA / "config" / "production.toml", env={})
    assert prod.kafka.security_protocol == "SASL_SSL"
    assert prod.kafka.sasl_mechanism and prod.kafka.ssl_cafile
    assert prod.kafka.sasl_plain_password is None, "secrets belong in the environment"
    # The password reaches it from the environment, as the manifests set it.
    with_secret = cfg.load(
        INFRA / "config" / "production.toml", env={"FLYWHEEL_KAFKA__SASL_PLAIN_PASSWORD": "s3cret"}
    )
    assert with_secret.kafka.client_kwargs()["sasl_plain_password"] == "s3cret"


def test_compose_runs_kraft_kafka_ingest_and_scheduler() -> None:
    compose = _docs(INFRA / "docker-compose.yml")[0]
    services = compose["services"]
    assert {"kafka", "kafka-init", "ingest", "scheduler", "prometheus"} <= set(services)
    env = services["kafka"]["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"] and "ZOOKEEPER" not in str(env).upper()
    assert services["ingest"]["command"] == ["ingest"] and services["scheduler"]["command"] == ["schedule"]
    assert services["scheduler"]["deploy"]["replicas"] == 1
    compose_cfg = cfg.load(INFRA / "config" / "compose.toml", env={})
    assert compose_cfg.kafka.bootstrap_servers == "kafka:9092"
    prom = _docs(INFRA / "prometheus" / "prometheus.yml")[0]
    targets = str(prom["scrape_configs"])
    assert f"scheduler:{compose_cfg.scheduler.metrics_port}" in targets
    assert str(compose_cfg.ingest.metrics_port) in targets
    gpu = _docs(INFRA / "docker-compose.gpu.yml")[0]["services"]["scheduler"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def test_k8s_ingest_replicas_match_partitions_and_nightly_is_on_a_gpu() -> None:
    job = _k8s("Job")[0]
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    ingest = next(d for d in _k8s("Deployment") if d["metadata"]["name"] == "flywheel-ingest")
    assert ingest["spec"]["replicas"] == int(env["PARTITIONS"])
    cron = _k8s("CronJob")[0]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron_problem(cron["spec"]["schedule"]) is None
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["containers"][0]["args"][0] == "nightly"
    claims = {c["metadata"]["name"] for c in _k8s("PersistentVolumeClaim")}
    for workload in [ingest, *_k8s("Deployment")]:
        spec = workload["spec"]["template"]["spec"]
        used = {
            v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v
        }
        assert used <= claims and used
    listed = set(_docs(INFRA / "k8s" / "kustomization.yaml")[0]["resources"])
    for name in listed:
        assert (INFRA / "k8s" / name).is_file()


def test_dockerfile_runs_the_flywheel_command() -> None:
    text = (INFRA / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["flywheel"]' in text and "HF_HUB_OFFLINE=1" in text
    for package in ("flywheel", "ingest", "curation", "training", "evals"):
        assert f"COPY {package} ./{package}" in text


def _flywheel_pods() -> list[dict[str, Any]]:
    """The pod specs running the flywheel image (not Kafka's topic job)."""
    pods = [d["spec"]["template"]["spec"] for d in _k8s("Deployment")]
    pods += [c["spec"]["jobTemplate"]["spec"]["template"]["spec"] for c in _k8s("CronJob")]
    return [p for p in pods if "flywheel" in p["containers"][0]["image"]]


def test_k8s_pods_get_no_service_link_variables() -> None:
    # A Service named flywheel-scheduler would inject FLYWHEEL_SCHEDULER_PORT & co. into every pod.
    pods = _flywheel_pods()
    assert len(pods) == 3
    assert all(p.get("enableServiceLinks") is False for p in pods)


def _configmap_config(tmp_path: Path) -> cfg.Config:
    m = next(m for m in _k8s("ConfigMap") if "config.toml" in m["data"])
    f = tmp_path / "config.toml"
    f.write_text(m["data"]["config.toml"])
    return cfg.load(f, env={})


def test_production_configs_train_a_real_model_and_judge_with_an_endpoint(tmp_path: Path) -> None:
    shipped = {
        "production.toml": cfg.load(INFRA / "config" / "production.toml", env={}),
        "compose.toml": cfg.load(INFRA / "config" / "compose.toml", env={}),
        "configmap.yaml": _configmap_config(tmp_path),
    }
    demo = cfg.defaults()
    for name, c in shipped.items():
        t, e = c.training, c.evals
        assert t.mode == "lora" and 1e-6 <= t.learning_rate <= 5e-5 < demo.training.learning_rate, name
        assert t.max_length >= 2048 > demo.training.max_length and t.max_prompt_length < t.max_length, name
        assert e.judge == "endpoint" and e.judge_url.startswith("http") and e.judge_model, name
        assert e.primary() == "lc_win_rate" and e.replay_samples >= 4, name
        assert e.max_new_tokens >= 512 > demo.evals.max_new_tokens and e.judge_concurrency > 1, name
        assert not e.judge_api_key_env.startswith("FLYWHEEL_"), "would be read as a setting"
    key = shipped["configmap.yaml"].evals.judge_api_key_env
    # Every pod that runs the gate gets the judge's key from a Secret, by the name the config reads.
    for pod in _flywheel_pods():
        container = pod["containers"][0]
        if container["args"][0] in ("nightly", "schedule"):
            env = {e["name"]: e for e in container.get("env", [])}
            assert "secretKeyRef" in env[key]["valueFrom"]
    compose = _docs(INFRA / "docker-compose.yml")[0]["services"]["scheduler"]["environment"]
    assert shipped["compose.toml"].evals.judge_api_key_env in compose and "FLYWHEEL_CONFIG" in compose


def test_vllm_serves_the_champion_from_the_registry_volume_as_another_user(tmp_path: Path) -> None:
    vllm = next(d for d in _k8s("Deployment") if d["metadata"]["name"] == "vllm-champion")
    pod = vllm["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"].startswith("vllm/vllm-openai:")
    config = _configmap_config(tmp_path)
    assert f"--model={config.paths.registry}/serving/current" in container["args"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "data")
    assert mount["readOnly"] is True and config.paths.registry.startswith(mount["mountPath"])
    flywheel_uid = _k8s("CronJob")[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["securityContext"]
    assert pod["securityContext"]["runAsUser"] != flywheel_uid["runAsUser"]  # reads by the 0644 modes
    assert pod["enableServiceLinks"] is False
    # The rounds run as the service account the Role lets patch exactly this Deployment.
    role = next(r for r in _k8s("Role") if r["metadata"]["name"] == "roll-vllm-champion")
    assert role["rules"][0]["resourceNames"] == ["vllm-champion"] and "patch" in role["rules"][0]["verbs"]
    binding = _k8s("RoleBinding")[0]
    for spec in _flywheel_pods():
        if spec["containers"][0]["args"][0] in ("nightly", "schedule"):
            assert spec["serviceAccountName"] == binding["subjects"][0]["name"]
    assert config.serving.on_promote_command.endswith("infra/hooks/roll_vllm.py")
    assert "serving-vllm.yaml" in _docs(INFRA / "k8s" / "kustomization.yaml")[0]["resources"]
    assert "COPY infra/hooks ./infra/hooks" in (INFRA / "Dockerfile").read_text()


def test_roll_vllm_patches_the_deployment_like_rollout_restart(tmp_path: Path) -> None:
    """The hook script against a loopback stand-in of the Kubernetes API (one PATCH recorded)."""
    import http.server
    import json
    import os
    import subprocess
    import sys
    import threading

    seen: list[tuple[str, str, dict[str, Any]]] = []

    class Api(http.server.BaseHTTPRequestHandler):
        def do_PATCH(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, self.headers["Authorization"], body))
            self.send_response(
                200 if self.headers["Content-Type"].startswith("application/strategic") else 415
            )
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("tok123\n")
    (sa / "namespace").write_text("flywheel")
    env = {
        **os.environ,
        "K8S_API": f"http://127.0.0.1:{server.server_address[1]}",
        "K8S_SA_DIR": str(sa),
        "CHAMPION_VERSION": "kto-abc",
    }
    try:
        done = subprocess.run([sys.executable, str(ROLL_VLLM)], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        [(path, auth, body)] = seen
        assert path == "/apis/apps/v1/namespaces/flywheel/deployments/vllm-champion"
        assert auth == "Bearer tok123"
        notes = body["spec"]["template"]["metadata"]["annotations"]
        assert notes["flywheel/champion"] == "kto-abc" and "kubectl.kubernetes.io/restartedAt" in notes
        failed = subprocess.run(
            [sys.executable, str(ROLL_VLLM)],
            env={**env, "K8S_SA_DIR": str(tmp_path / "none")},
            capture_output=True,
        )
        assert failed.returncode == 1 and b"no service-account credentials" in failed.stderr
    finally:
        server.shutdown()
        server.server_close()


def test_fsdp_config_is_what_accelerate_launch_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    """infra/accelerate/fsdp.yaml through accelerate's own launcher parsing and FSDP plugin."""
    from accelerate import FullyShardedDataParallelPlugin
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env
    from transformers import AutoModelForCausalLM, Qwen2Config

    path = INFRA / "accelerate" / "fsdp.yaml"
    raw = _docs(path)[0]
    assert raw["distributed_type"] == "FSDP"
    fsdp = raw["fsdp_config"]
    assert {
        "fsdp_sharding_strategy",
        "fsdp_auto_wrap_policy",
        "fsdp_transformer_layer_cls_to_wrap",
        "fsdp_state_dict_type",
    } <= fsdp.keys()
    command = ["--config_file", str(path), "--num_processes", "2", "-m", "flywheel.cli", "train"]
    args, _, _ = _validate_launch_command(launch_command_parser().parse_args(command))
    assert args.use_fsdp and args.num_processes == 2  # the command line beats the file's 8
    env = prepare_multi_gpu_env(args)
    assert env["ACCELERATE_USE_FSDP"] == "true"
    for key, value in env.items():
        if key.startswith(("FSDP_", "ACCELERATE_")):
            monkeypatch.setenv(key, value)
    # The plugin asks for a GPU only to sync module states from rank 0; not needed to read the rest.
    monkeypatch.setenv("FSDP_CPU_RAM_EFFICIENT_LOADING", "false")
    monkeypatch.setenv("FSDP_SYNC_MODULE_STATES", "false")
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.sharding_strategy.name == "FULL_SHARD"
    # training/run.py builds the candidate from the full state dict; a sharded one saves nothing.
    assert plugin.state_dict_type.name == "FULL_STATE_DICT"
    assert plugin.use_orig_params is False  # LoRA: frozen and trained parameters in one model
    tiny = Qwen2Config(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=64,
    )
    plugin.set_auto_wrap_policy(AutoModelForCausalLM.from_config(tiny))  # raises if no such layer class
    assert plugin.transformer_cls_names_to_wrap == ["Qwen2DecoderLayer"]
