"""Which program an offer's app id names, on this node.

An offer says `app_id` ("tutorial"); the node needs something it can start:
an `AppSpec` (a Python module run as `python -m MODULE`, and the Docker image
the Docker environments would run instead). The registry is that mapping,
kept by the node; an id it does not hold is refused at bid time
(`KnownAppStrategy`) rather than failing once a run has started.
"""

from collections.abc import Iterator, Mapping

from golem_task_api.errors import NotFound
from golem_task_api.node.compute.bidding import BidDecision, BidRequest
from golem_task_api.node.envs.base import AppSpec
from golem_task_api.validation import check_id

DEFAULT_APPS: Mapping[str, str] = {"tutorial": "apps.tutorial"}


class UnknownApp(NotFound):
    """No app with this id is registered on this node."""

    def __init__(self, app_id: str, known: list[str]) -> None:
        listed = ", ".join(known) or "none"
        super().__init__(
            f"no app {app_id!r} is registered on this node (registered: {listed});"
            " register it with AppRegistry.register(app_id, 'python.module')"
        )
        self.app_id = app_id


class AppRegistry:
    """App id → `AppSpec`. `apps` None means `DEFAULT_APPS` (the bundled apps)."""

    def __init__(self, apps: Mapping[str, AppSpec | str] | None = None) -> None:
        self._apps: dict[str, AppSpec] = {}
        for app_id, app in (DEFAULT_APPS if apps is None else apps).items():
            self.register(app_id, app)

    def register(self, app_id: str, app: AppSpec | str) -> AppSpec:
        """Add or replace an app; a string is a module name run with the node's Python."""
        # The id names the app's log directory: it must be a path component.
        check_id("app_id", app_id)
        spec = AppSpec(name=app_id, module=app) if isinstance(app, str) else app
        self._apps[app_id] = spec
        return spec

    def get(self, app_id: str) -> AppSpec:
        try:
            return self._apps[app_id]
        except KeyError:
            raise UnknownApp(app_id, sorted(self._apps)) from None

    def __contains__(self, app_id: object) -> bool:
        return app_id in self._apps

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._apps))

    def __len__(self) -> int:
        return len(self._apps)


class KnownAppStrategy:
    """A bid strategy: bid only for apps in the registry."""

    def __init__(self, registry: AppRegistry) -> None:
        self.registry = registry

    def should_bid(self, request: BidRequest) -> BidDecision:
        try:
            self.registry.get(request.offer.app_id)
        except UnknownApp as exc:
            return BidDecision.no(str(exc))
        return BidDecision.yes()


__all__ = ["DEFAULT_APPS", "AppRegistry", "KnownAppStrategy", "UnknownApp"]
