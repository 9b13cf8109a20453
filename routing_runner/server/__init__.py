"""`routing-runner serve`: the routed bot over HTTP - OpenAI-compatible, streaming, a web page.

    app                the Starlette app of one worker: routes, middleware, lifespan
    service            turns for requests: the conversation's turn lock, the concurrency
                       limit, cancellation (a turn rolls back as in a chat)
    requests           model ids, message text, the history rule, the `routing` object
    chat_completions   POST /v1/chat/completions     responses   POST /v1/responses
    native             models, stored conversations, health, metrics, the chat page
    middleware         access log, bearer token, body size     problems   OpenAI-shaped errors
    metrics            Prometheus counters                      run        uvicorn, workers

It drives the turn runner through our event types (`runtime.events`) and the stores through
`SessionStore`, never the Agents SDK itself.
"""
