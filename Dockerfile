# zcc's reference controller as a container image. It needs no registry:
# the base is scratch and the only file is the static zcc binary that
# `make build` leaves in bin/ (CGO_ENABLED=0). Build it with `make image`.
# Written for Docker's classic builder (no BuildKit features), which is
# what testcontainers-go drives.
FROM scratch
COPY bin/zcc /zcc
# Lets `make image` remove earlier builds once their tags have moved on.
LABEL dev.zcc-harness.image="controller"
# Zeek's variables configure the controller as they configure Zeek's: it
# listens on every interface of the container, on 2150/tcp. The request
# timeout and sweep interval come from ZCC_REQUEST_TIMEOUT and
# ZCC_SWEEP_INTERVAL when set (Zeek's defaults, 10 s each, otherwise).
ENV ZEEK_CONTROLLER_ADDR=0.0.0.0 \
    ZEEK_CONTROLLER_PORT=2150/tcp
EXPOSE 2150/tcp
# No account database in scratch, so a numeric uid: nobody.
USER 65534:65534
ENTRYPOINT ["/zcc", "controller"]
