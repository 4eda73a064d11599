"""What MaestroNG 0.8.3 would send to Docker for each container of an environment file.

Run with the Python of a virtualenv that has `maestro-ng==0.8.3` (see tests/bed/parity.rs):

    python maestrong_view.py FILE...

It loads each FILE with MaestroNG's own loader (Jinja2, then YAML) and model (`Conductor`), and
prints one JSON object on stdout:

    {"name": ..., "ships": {name: ip},
     "services": {name: {"dependencies": [...], "requires": [...], "wants_info": [...],
                         "omit": bool}},
     "containers": [{"name", "service", "ship", "create": <Docker create body>,
                     "stop_timeout": seconds}, ...]}

`containers` is in MaestroNG's start order for every service (`maestro start` with every
name); `create` is the body docker-py builds for `POST /containers/create` from the very
arguments MaestroNG's start task passes (maestro/plays/tasks.py, StartTask._create_and_start).
A file MaestroNG refuses prints {"error": "..."} and exits 0: refusing is an answer too.
Nothing here contacts a Docker daemon.
"""

import json
import sys

from maestro import loader
from maestro import maestro as conductor_module


def create_body(container):
    """The arguments of StartTask's create_container call, turned into the request body."""
    ports = container.ports and list(
        map(lambda p: tuple(p["exposed"].split("/")), container.ports.values())
    ) or None
    return container.ship.backend.create_container_config(
        image=container.image,
        command=container.command,
        hostname=container.hostname,
        user=container.username,
        environment=container.env,
        volumes=sorted(container.get_volumes()),
        cpu_shares=container.cpu_shares,
        host_config=container.host_config,
        ports=ports,
        detach=True,
        working_dir=container.workdir,
        labels=container.labels,
    )


def view(path):
    config = loader.load(path)
    conductor = conductor_module.Conductor(config)
    every_service = sorted(conductor.services)
    order = conductor._ordered_containers(every_service, expand_services=True)
    return {
        "name": conductor.env_name,
        "ships": {name: ship.ip for name, ship in sorted(conductor.ships.items())},
        "services": {
            name: {
                # Direct ones (volumes_from across services included), and the transitive
                # closure that orders the start.
                "dependencies": sorted(s.name for s in service.dependencies),
                "requires": sorted(s.name for s in service.requires),
                "wants_info": sorted(s.name for s in service.wants_info),
                "omit": bool(service.omit),
            }
            for name, service in sorted(conductor.services.items())
        },
        "containers": [
            {
                "name": c.name,
                "service": c.service.name,
                "ship": c.ship.name,
                "create": create_body(c),
                # Not in the create body: MaestroNG passes it with every stop.
                "stop_timeout": c.stop_timeout,
            }
            for c in order
        ],
    }


def view_or_refusal(path):
    try:
        return view(path)
    except Exception as err:  # every refusal of MaestroNG's is an exception of some kind
        return {"error": "%s: %s" % (type(err).__name__, err)}


def main():
    # One process for the whole corpus: MaestroNG's imports take longer than loading a file.
    result = {path: view_or_refusal(path) for path in sys.argv[1:]}
    # Keys as Docker would receive them (json turns True into "true", 1 into "1"), then sorted.
    as_sent = json.loads(json.dumps(result, default=sorted))
    json.dump(as_sent, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
