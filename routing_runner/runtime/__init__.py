"""Running agents: providers, agent graph, retries, history window, our events, the turn runner."""
