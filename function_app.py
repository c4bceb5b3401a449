"""The Azure Functions app: creates the app and registers the blueprints, nothing else."""

import azure.durable_functions as df
import azure.functions as func

from scanning.functions import (
    api,
    dashboard,
    defender,
    events,
    http,
    orchestration,
    rescans,
    timers,
)

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(events.bp)
app.register_functions(orchestration.bp)
app.register_functions(rescans.bp)
app.register_functions(timers.bp)
app.register_functions(api.bp)
app.register_functions(defender.bp)
app.register_functions(http.bp)
app.register_functions(dashboard.bp)
