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
``nano_llm_web``: serve the operator's page for one chat node (``target:=/nano_llm``).

    ros2 run ros2_nano_llm nano_llm_web --ros-args -p target:=/nano_llm -p port:=8080

The rclpy executor spins in its own thread; the web server runs on an asyncio loop in the
main thread, and ROS events reach it through ``loop.call_soon_threadsafe``. Ends cleanly
(code 0) on Ctrl-C and SIGTERM, like the chat node (``..signals``).
"""

import asyncio
import threading
from typing import Any, List, Optional

from aiohttp import web
import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

from .bridge import ChatBridge
from .hub import Hub
from .server import WebServer
from ..compat import initialized
from ..signals import ShutdownSignals

LOGGER = 'nano_llm_web'


async def serve(bridge: ChatBridge) -> None:
    """Serve the page until cancelled (Ctrl-C, SIGTERM); raise OSError if the port is taken."""
    loop = asyncio.get_running_loop()
    server = WebServer(bridge, Hub(bridge.config.target))

    def sink(event: Any) -> None:
        try:
            loop.call_soon_threadsafe(server.event_from_ros, event)
        except RuntimeError:
            pass  # the loop closed while the executor delivered a message: shutting down
    bridge.sink = sink
    runner = web.AppRunner(server.app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, bridge.config.host, bridge.config.port)
        await site.start()
        say_where(bridge, runner.addresses[0][1])  # the port (port:=0 takes any free one)
        await server.watch_state()
    finally:
        bridge.sink = lambda event: None
        await runner.cleanup()


def say_where(bridge: ChatBridge, port: int) -> None:
    """Log the page's address, with the control token when it was generated."""
    c = bridge.config
    host = '127.0.0.1' if c.host in ('0.0.0.0', '') else c.host
    where = f'http://{host}:{port}/'
    log = bridge.get_logger()
    log.info(f'serving the page for {c.target} on {c.host}:{port} ({where})'
             + ('' if c.host in ('127.0.0.1', 'localhost', '::1') else
                ': open to the network'))
    if c.token_generated:
        log.info(f'control token (generated): {c.token}  -- open {where}#token={c.token}')
    else:
        log.info(f'control needs the token parameter: open {where}#token=<token>')


def main(args: Optional[List[str]] = None) -> int:
    """Run the web node until Ctrl-C or SIGTERM; return the exit code (1: bad setup)."""
    code = 0
    stopping = ShutdownSignals(rclpy.logging.get_logger(LOGGER).info)
    with stopping:  # before rclpy.init(): rclpy's handler runs first, then this one
        try:
            with initialized(args):
                try:
                    bridge = ChatBridge()
                except (ValueError, ParameterException) as error:  # a wrong value or type
                    rclpy.logging.get_logger(LOGGER).fatal(f'bad parameters: {error}')
                    return 1
                executor = MultiThreadedExecutor(num_threads=2)
                executor.add_node(bridge)
                spinner = threading.Thread(target=_spin, args=(executor,), daemon=True)
                spinner.start()
                try:
                    asyncio.run(serve(bridge))
                except OSError as error:
                    bridge.get_logger().fatal(
                        f'cannot serve on {bridge.config.host}:{bridge.config.port}: {error}')
                    code = 1
                finally:
                    stopping.ending()
                    executor.shutdown(timeout_sec=5.0)
                    spinner.join(5.0)  # no callback runs while the node goes
                    bridge.destroy_node()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
    stopping.exit_after(code)
    return code


def _spin(executor: MultiThreadedExecutor) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:
        pass  # Ctrl-C or SIGTERM: main() ends the server


if __name__ == '__main__':
    main()
