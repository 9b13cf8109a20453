"""The routing graph of a config, drawn as Mermaid, Graphviz DOT or text.

Built from the config alone (`config.model`), so `routing-runner graph` never loads the Agents
SDK: `overlay` reads what a replay report or a stored conversation says was taken, `draw` writes
the graph with it. Only `stored` (a conversation's path) opens a session store.
"""
