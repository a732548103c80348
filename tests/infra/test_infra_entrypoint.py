"""The Pulumi entry point (infra/__main__.py) runs under mocks and exports the stack outputs.

Run in a child process: it builds a whole second stack, which must not mix with the
resources the other mock tests inspect. The layer installer is replaced (no pip, no
network) and the artifacts go to a temporary folder.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO_ROOT
from topology import TOPOLOGY

HERE = Path(__file__).resolve().parent

_PROGRAM = """
import dataclasses, json, runpy, sys
from pathlib import Path

root, tests, build = (Path(p) for p in sys.argv[1:4])
sys.path[:0] = [str(root), str(tests)]

import pulumi
from infra_mocks import PROJECT, STACK, RecordingMocks

pulumi.runtime.set_mocks(RecordingMocks(), project=PROJECT, stack=STACK, preview=False)
from topology import TOPOLOGY

keys = [f"omni:{secret.config_key}" for secret in TOPOLOGY.secrets]
identities = {f"omni:{identity.config_key}": "shop.example" for identity in TOPOLOGY.email_identities}
pulumi.runtime.set_all_config({**{key: "secret-value" for key in keys}, **identities}, secret_keys=keys)

import infra.stack
from tests.helpers import REPO_ROOT

real_build_stack = infra.stack.build_stack


def fake_installer(requirements, target):
    target.mkdir(parents=True)
    (target / "dependency.py").write_text("")


def build_for_test(settings, **_):
    settings = dataclasses.replace(settings, build_dir=build)
    return real_build_stack(settings, layer_installer=fake_installer)


infra.stack.build_stack = build_for_test


@pulumi.runtime.test
def run():
    runpy.run_path(str(root / "infra"), run_name="__main__")
    outputs = pulumi.runtime.get_root_resource().outputs
    return pulumi.Output.from_input(outputs).apply(lambda values: print(json.dumps(values, sort_keys=True)))


run()
"""


def test_entry_point_builds_the_stack_and_exports_its_outputs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROGRAM, str(REPO_ROOT), str(HERE), str(tmp_path / "build")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outputs = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(outputs) == {
        "apiUrl",
        "tableNames",
        "busName",
        "queueUrls",
        "deadLetterQueueUrls",
        "functionNames",
        "secretNames",
        "bucketNames",
        "cognitoUserPoolId",
        "cognitoUserPoolClientId",
        "agentJwtIssuer",
        "consoleUrl",
        "widgetUrl",
        "websocketUrls",
        "kmsKeyArn",
    }
    assert outputs["apiUrl"].startswith("https://")
    assert outputs["kmsKeyArn"].startswith("arn:aws:kms:eu-west-3:123456789012:key/")
    assert outputs["busName"] == "omni-test-events"
    assert re.fullmatch(r"https://[^/]+/widget/omni-chat\.[0-9a-f]{10}\.js", outputs["widgetUrl"])
    assert outputs["tableNames"]["webchat"] == "omni-test-webchat"
    assert outputs["bucketNames"] == {
        "inbound-email": "omni-test-inbound-email-123456789012",
        "knowledge": "omni-test-knowledge-123456789012",
    }
    assert set(outputs["queueUrls"]) == {queue.name for queue in TOPOLOGY.queues}
    assert (
        outputs["agentJwtIssuer"]
        == f"https://cognito-idp.eu-west-3.amazonaws.com/{outputs['cognitoUserPoolId']}"
    )
    assert (tmp_path / "build" / "functions" / "webchat.zip").is_file()
