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
Tests of the bot function registries: registry objects, NanoLLM's front, docs, test(), run().

Most tests use their own ``FunctionRegistry``; the tests of the NanoLLM front
(``@bot_function``, ``BotFunctions``) use the default registry and restore it.
"""

import ast
from datetime import datetime
import functools
import json
import os
import re
import threading
from typing import Optional

import pytest

from ros2_nano_llm.functions import bot_function, BotFunction, BotFunctions, FunctionRegistry
from ros2_nano_llm.functions import registry as registry_module


@pytest.fixture
def registry():
    """Give a test its own registry object holding the built-ins."""
    reg = FunctionRegistry()
    reg.load_builtins()
    return reg


def test_decorator_bare_and_with_arguments(front):
    registry = front

    def t_bare(x: int, y: float = 2.5, label: Optional[str] = None):
        return x + y

    # a Google-style docstring (set here, as the lint checks want numpy-style sections)
    t_bare.__doc__ = """Add things.

        Args:
            x: the first number.
            y: the second one.
        """
    bot_function(t_bare)

    @bot_function(name='T_NAMED', docs='Custom docs.', enabled=False)
    def t_named():
        """Ignored docstring."""
        return 'named'

    assert t_bare(1) == 3.5                 # the function itself is returned unchanged
    record = registry.find('t_bare')
    assert isinstance(record, BotFunction) and record.func is t_bare
    assert record.docs == 'Add things.'
    assert record.enabled and record.required_args == ['x']
    assert record.schema == {
        'type': 'object',
        'properties': {'x': {'type': 'integer', 'description': 'the first number.'},
                       'y': {'type': 'number', 'description': 'the second one.',
                             'default': 2.5},
                       'label': {'type': 'string', 'default': None}},
        'required': ['x']}
    named = registry.find('T_NAMED')
    assert named.func is t_named and named.docs == 'Custom docs.' and not named.enabled
    assert registry.find('t_named') is None


def test_call_returns_enabled_list_and_loads_builtins(front):
    registry = front
    funcs = BotFunctions()
    assert isinstance(funcs, list)
    names = [f.name for f in funcs]
    assert 'DATE' in names and 'TIME' in names
    assert all(f.enabled for f in funcs)

    @bot_function(enabled=False)
    def t_hidden():
        """Hidden."""

    assert 't_hidden' not in [f.name for f in BotFunctions()]
    assert 't_hidden' in [f.name for f in BotFunctions(all=True)]
    assert registry.len() == len(registry.list(all=True)) >= len(registry.list()) + 1


def test_builtins_give_the_real_date_and_time(registry):
    date, time_ = registry.find('DATE'), registry.find('TIME')
    assert date.docs == 'Returns the current date.'
    assert time_.docs == 'Returns the current time.'
    now = datetime.now()
    assert date.func() == f'{now:%A}, {now:%B} {now.day} {now.year}'
    assert re.fullmatch(r'(1[0-2]|[1-9]):[0-5]\d (AM|PM)', time_.func())


def test_filter_really_toggles(registry):
    def t_ros_a():
        """Do A."""

    def t_ros_b():
        """Do B."""

    registry.register(t_ros_a)
    registry.register(t_ros_b)
    matched = registry.filter('t_ros_*', mode='disable')
    assert sorted(f.name for f in matched) == ['t_ros_a', 't_ros_b']
    enabled = [f.name for f in registry]
    assert 't_ros_a' not in enabled and 't_ros_b' not in enabled
    assert 't_ros_a' not in registry.generate_docs()
    registry.filter(['T_ROS_B'], mode='enable')       # case-insensitive name
    enabled = [f.name for f in registry]
    assert 't_ros_b' in enabled and 't_ros_a' not in enabled
    assert 't_ros_b()' in registry.generate_docs()
    with pytest.raises(ValueError, match='no bot function matches'):
        registry.filter('no_such_*')
    with pytest.raises(ValueError, match='filter mode'):
        registry.filter('t_ros_a', mode='toggle')


def test_find_in_given_functions(front):
    registry = front

    @bot_function
    def t_find():
        """F."""

    assert registry.find('t_find').func is t_find
    assert registry.find('t_find', functions=[t_find]).func is t_find
    assert registry.find('t_find', functions=[registry.find('DATE')]) is None
    assert registry.find('nope') is None


def test_generate_docs_python(registry):
    def t_move(distance: float, speed: float = 0.5):
        pass

    t_move.__doc__ = """Drive forward.

        Args:
            distance: metres to drive.
        """
    registry.register(t_move)

    date = registry.find('DATE')
    move = registry.find('t_move')
    docs = registry.generate_docs(functions=[date, move])
    assert docs.startswith('You are able to call the Python functions')
    assert '* DATE() - Returns the current date.\n' in docs
    assert ('* t_move(distance: float, speed: float = 0.5) - Drive forward. '
            '(distance: metres to drive.)') in docs
    assert 'for example DATE()' in docs
    bare = registry.generate_docs(prologue=False, epilogue=False, functions=[move])
    assert bare == '* t_move(distance: float, speed: float = 0.5) - Drive forward. ' \
                   '(distance: metres to drive.)'
    custom = registry.generate_docs(prologue='Tools:\n', epilogue='', functions=[date])
    assert custom == 'Tools:\n* DATE() - Returns the current date.'
    assert registry.generate_docs(functions=[]) == ''
    with pytest.raises(ValueError, match='unknown docs spec'):
        registry.generate_docs(spec='yaml')


def test_generate_docs_json_and_openai(registry):
    def t_lights(on: bool):
        """Switch the lights."""

    registry.register(t_lights)

    funcs = [registry.find('DATE'), registry.find('t_lights')]
    openai = json.loads(registry.generate_docs(spec='openai', functions=funcs))
    assert openai == [
        {'type': 'function', 'function': {
            'name': 'DATE', 'description': 'Returns the current date.',
            'parameters': {'type': 'object', 'properties': {}, 'required': []}}},
        {'type': 'function', 'function': {
            'name': 't_lights', 'description': 'Switch the lights.',
            'parameters': {'type': 'object', 'properties': {'on': {'type': 'boolean'}},
                           'required': ['on']}}}]
    docs = registry.generate_docs(spec='json', functions=funcs)
    inner = docs.split('<tools>\n', 1)[1].split('\n</tools>', 1)[0]
    assert [json.loads(line) for line in inner.splitlines()] == openai
    assert '<tool_call>' in docs and '"arguments"' in docs
    assert registry.tool_schemas(funcs) == openai


def test_register_validates_and_unregister(registry):
    with pytest.raises(ValueError, match='Python identifier'):
        registry.register(lambda: 1, name='bad name')
    with pytest.raises(ValueError, match='callable'):
        registry.register('not callable', name='x')
    record = registry.register(lambda: 'ok', name='t_lambda', docs='Say ok.')
    assert registry.find('t_lambda') is record and record.func() == 'ok'
    assert registry.unregister('t_lambda') is True
    assert registry.find('t_lambda') is None
    assert registry.unregister('t_lambda') is False


def test_test_disables_failing_functions(registry):
    calls = []

    @registry.register
    def t_ok():
        """Works."""
        calls.append('ok')
        return 'fine'

    @registry.register
    def t_broken():
        """Fails."""
        calls.append('broken')
        raise RuntimeError('no sensor')

    @registry.register
    def t_needs_args(x: int):
        """Needs an argument, so it is not tested."""
        calls.append('args')

    @functools.partial(registry.register, testable=False)
    def t_side_effect():
        """Move the robot; never called by test()."""
        calls.append('side effect')

    assert registry.test() is False
    assert 'ok' in calls and 'broken' in calls
    assert 'args' not in calls and 'side effect' not in calls
    assert not registry.find('t_broken').enabled
    assert registry.find('t_ok').enabled and registry.find('t_needs_args').enabled
    assert 't_broken' not in [f.name for f in registry]
    registry.unregister('t_broken')
    assert registry.test() is True           # everything left passes


def test_test_without_disabling(registry):
    @registry.register
    def t_broken2():
        """Fails."""
        raise ValueError('x')

    assert registry.test(disable_on_error=False) is False
    assert registry.find('t_broken2').enabled


def test_run_executes_every_call(registry):
    @registry.register
    def t_add(a: int, b: int = 0):
        """Add two numbers."""
        return a + b

    text = ('Sum: t_add(2, b=3) and again t_add(1). Then '
            '<tool_call>{"name": "t_add", "arguments": {"a": 10}}</tool_call> and '
            '<tool_call>{"name": "nope", "arguments": {}}</tool_call>')
    results = registry.run_calls(text)
    assert [(c.name, r) for c, r in results] == [
        ('t_add', '5'), ('t_add', '1'), ('t_add', '10'),
        ('nope', results[3][1])]
    assert results[3][1].startswith("error: unknown function 'nope'; available: ")
    # only the given functions are callable
    only = registry.run_calls('t_add(1, 1) DATE()', functions=[registry.find('DATE')])
    assert [c.name for c, _ in only] == ['DATE']


def test_bind_checks_types():
    def func(n: int, x: float, on: bool, s: str = 'a'):
        return n, x, on, s

    record = BotFunction(name='func', func=func)
    bound = record.bind([1, 2, True])
    assert bound.args == (1, 2.0, True) and isinstance(bound.args[1], float)
    for args, kwargs, message in [([1.5, 2.0, True], {}, "'n' must be int"),
                                  ([True, 2.0, True], {}, "'n' must be int"),
                                  ([1, 'x', True], {}, "'x' must be float"),
                                  ([1, 2.0, 1], {}, "'on' must be bool"),
                                  ([1, 2.0], {}, 'missing'),
                                  ([1, 2.0, True], {'bad': 1}, 'unexpected')]:
        with pytest.raises(TypeError, match=message):
            record.bind(args, kwargs)


def test_thread_safety_smoke(registry):
    errors = []
    barrier = threading.Barrier(6)

    def worker(i):
        try:
            barrier.wait()
            for j in range(60):
                name = f't_thread_{i}_{j % 5}'
                registry.register(lambda: 'x', name=name, docs='Thread test.')
                registry.list()
                registry.generate_docs(spec='json' if j % 2 else 'python')
                registry.filter(name, mode='disable' if j % 2 else 'enable')
                registry.find(name)
                registry.unregister(name)
        except Exception as exc:  # noqa: B902 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert not [f for f in registry.list(all=True) if f.name.startswith('t_thread_')]


# ---- NanoLLM fidelity (issue 13 items 1 and 10) and registry objects (issue 14 item 2) ----

def test_a_users_function_wins_over_the_builtin_whatever_the_order(front):
    default = registry_module.default_registry()
    default.unregister('DATE')
    default.builtins_loaded = False

    @bot_function
    def DATE():  # noqa: N802 - the model calls it by this name
        """Return my date."""
        return 'mine'

    front.generate_docs()                     # loads the built-ins lazily: must not replace it
    assert front.find('DATE').func is DATE
    assert front.find('DATE')('DATE()') == 'mine'
    front.load(test=False)                    # nor does loading them again
    assert front.find('DATE').func is DATE

    # registered after the built-ins: the user's wins too
    reg = FunctionRegistry()
    reg.load_builtins()

    def TIME():  # noqa: N802 - the model calls it by this name
        return 'teatime'

    reg.register(TIME)
    reg.load_builtins()
    assert reg.find('TIME').func is TIME and reg.run('TIME()') == ' teatime'


def test_front_returns_what_nanollm_returns(front):
    def SQRT(x: float):  # noqa: N802 - the model calls it by this name
        """Return the square root of x."""
        return str(x ** 0.5)

    assert front.register(SQRT) is SQRT                       # the function, not a record
    assert isinstance(SQRT.__bot_function__, BotFunction)
    sqrt = front.find('SQRT')
    assert sqrt('The root: SQRT(64)') == '8.0'                 # items run on model text
    assert sqrt('no call here') is None
    assert front.run('Let me see: SQRT(64)') == ' 8.0'         # the results' text ...
    assert front.run('nothing to run') is None                 # ... or None
    assert front.run('<tool_call>{"name": "SQRT", "arguments": {"x": 9}}</tool_call>',
                     template='chat-ml-tools') == '{"name": "SQRT", "content": "3.0"}'
    [(call, result)] = front.run_calls('SQRT(4)')               # the richer form
    assert call.name == 'SQRT' and result == '2.0'
    assert front()[0] is front.list()[0]                        # BotFunctions()[0]
    assert front[0] is front.list(all=True)[0]                  # BotFunctions[0]
    assert isinstance(front(), list)


def test_registries_are_independent_objects(front):
    before = [f.name for f in front.list(all=True)]
    one, two = FunctionRegistry(), FunctionRegistry()

    def LIGHTS(on: bool):  # noqa: N802 - the model calls it by this name
        """Switch the lights."""
        return 'lights on' if on else 'lights off'

    record = one.register(LIGHTS, docs='Lights.')
    assert isinstance(record, BotFunction) and record.docs == 'Lights.'
    assert two.register(LIGHTS, name='LAMP').name == 'LAMP'
    assert one.names() == ['LIGHTS'] and two.names() == ['LAMP']
    assert 'LIGHTS' in one and 'LIGHTS' not in two and len(one) == 1
    assert [f.name for f in front.list(all=True)] == before    # the default is untouched
    one.load_builtins(['TIME'])
    assert one.names() == ['LIGHTS', 'TIME']
    with pytest.raises(ValueError, match="no built-in function 'NOPE'"):
        one.load_builtins(['NOPE'])
    assert FunctionRegistry([LIGHTS]).names() == ['LIGHTS']
    # a registry is passed where a list of functions is taken: its enabled ones
    from ros2_nano_llm.functions import CallDetector, execute, find_calls
    [call] = find_calls('LIGHTS(True)', one)
    assert execute(call, one) == 'lights on'
    assert CallDetector(one).feed('TIME(', final=False) == []
    one.filter('LIGHTS', mode='disable')
    assert execute(call, one).startswith("error: unknown function 'LIGHTS'")


def test_functions_package_has_no_import_cycle():
    # every import between the package's modules, lazy ones inside functions included
    folder = os.path.dirname(registry_module.__file__)
    graph = {}
    for name in os.listdir(folder):
        if not name.endswith('.py') or name == '__init__.py':
            continue
        with open(os.path.join(folder, name), encoding='utf-8') as f:
            tree = ast.parse(f.read())
        graph[name[:-3]] = {node.module.split('.')[0] for node in ast.walk(tree)
                            if isinstance(node, ast.ImportFrom) and node.level == 1 and
                            node.module}
    assert 'registry' not in graph['parsing'] and 'registry' not in graph['record']

    def reaches(start, target, seen=()):
        return any(n == target or (n not in seen and reaches(n, target, seen + (n,)))
                   for n in graph.get(start, ()))
    cycles = [m for m in graph if reaches(m, m)]
    assert not cycles, graph
