#!/usr/bin/env python3
"""Promotion hook: restart the vLLM Deployment so it loads the new champion.

``serving.on_promote_command = "python3 /app/infra/hooks/roll_vllm.py"`` runs it after every
champion switch (flywheel.hooks). It does what ``kubectl rollout restart deployment/NAME`` does:
a strategic-merge PATCH of the pod template's ``kubectl.kubernetes.io/restartedAt`` annotation
(plus ``flywheel/champion``, the version), with the pod's service-account token; the new pods
load ``/data/registry/serving/current``, which already points at the new champion. Standard
library only, so it runs in the flywheel image without kubectl.

Environment: ``CHAMPION_VERSION`` (set by the hook runner), ``VLLM_DEPLOYMENT``
(default ``vllm-champion``), ``VLLM_NAMESPACE`` (default: the pod's namespace), ``K8S_API``
(default ``https://kubernetes.default.svc``), ``K8S_SA_DIR`` (default the mounted service account).
Exit 0 when the API accepted the patch; 1 with the reason on stderr otherwise (the hook runner
retries with backoff).
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def main() -> int:
    sa = Path(os.environ.get("K8S_SA_DIR", SA_DIR))
    api = os.environ.get("K8S_API", "https://kubernetes.default.svc").rstrip("/")
    name = os.environ.get("VLLM_DEPLOYMENT", "vllm-champion")
    try:
        token = (sa / "token").read_text().strip()
        namespace = os.environ.get("VLLM_NAMESPACE") or (sa / "namespace").read_text().strip()
    except OSError as exc:
        print(f"roll_vllm: no service-account credentials in {sa}: {exc}", file=sys.stderr)
        return 1
    version = os.environ.get("CHAMPION_VERSION", "")
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    patch = {
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {"kubectl.kubernetes.io/restartedAt": now, "flywheel/champion": version}
                }
            }
        }
    }
    request = urllib.request.Request(
        f"{api}/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
        data=json.dumps(patch).encode(),
        method="PATCH",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/strategic-merge-patch+json",
        },
    )
    context = None
    if api.startswith("https://"):
        ca = sa / "ca.crt"
        context = ssl.create_default_context(cafile=str(ca) if ca.is_file() else None)
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        print(f"roll_vllm: PATCH deployment/{name} in {namespace}: HTTP {exc.code}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"roll_vllm: cannot reach {api}: {exc}", file=sys.stderr)
        return 1
    print(f"roll_vllm: restarted deployment/{name} in {namespace} for champion {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
