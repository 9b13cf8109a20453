"""routing-runner: a configuration-driven routing runner on the OpenAI Agents SDK.

The loader (`load_config`) needs nothing beyond PyYAML and jsonschema; only `runtime/` and
`stores/` import the Agents SDK, when agents are built or a conversation is opened.
ARCHITECTURE.md maps the layers.
"""

from .config import LoadedConfig, load_config
from .errors import ConfigError, Problem, RoutingRunnerError

__version__ = "0.1.0"

__all__ = ["ConfigError", "LoadedConfig", "Problem", "RoutingRunnerError", "__version__",
           "load_config"]
