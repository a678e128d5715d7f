"""A paho-mqtt client against roost-mqtt, over TCP and over WebSocket: for each transport and
protocol version it subscribes at QoS 1, publishes at QoS 0, 1 and 2, and waits for all three
back. Prints one `ok <transport> <version>` line per pass; exits 1 with the reason otherwise.

usage: paho_client.py HOST TCP_PORT WS_PORT USER PASSWORD
"""
import sys
import threading

import paho.mqtt.client as mqtt

host, tcp_port, ws_port, user, password = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]


def run(transport, port, version):
    got = []
    done = threading.Event()
    subscribed = threading.Event()
    name = "v5" if version == mqtt.MQTTv5 else "v311"
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"paho-{transport}-{name}",
        protocol=version,
        transport=transport,
    )
    c.username_pw_set(user, password)

    def on_message(client, userdata, msg):
        got.append((msg.topic, msg.payload.decode(), msg.qos))
        if len(got) == 3:
            done.set()

    connected = threading.Event()
    c.on_message = on_message
    c.on_connect = lambda *args: connected.set()
    c.on_subscribe = lambda *args: subscribed.set()
    rc = c.connect(host, port, keepalive=30)
    if rc != 0:
        sys.exit(f"{transport} {name}: connect returned {rc}")
    c.loop_start()
    if not connected.wait(10):
        sys.exit(f"{transport} {name}: no CONNACK")
    c.subscribe(f"paho/{transport}/#", qos=1)
    if not subscribed.wait(10):
        sys.exit(f"{transport} {name}: no SUBACK")
    for qos in (0, 1, 2):
        c.publish(f"paho/{transport}/q{qos}", f"hello {qos}", qos=qos).wait_for_publish(10)
    if not done.wait(10):
        sys.exit(f"{transport} {name}: got only {got}")
    c.loop_stop()
    c.disconnect()
    # Delivered at min(publish QoS, subscription QoS 1).
    want = sorted([(f"paho/{transport}/q{q}", f"hello {q}", min(q, 1)) for q in (0, 1, 2)])
    if sorted(got) != want:
        sys.exit(f"{transport} {name}: got {sorted(got)}, want {want}")
    print(f"ok {transport} {name}", flush=True)


for version in (mqtt.MQTTv311, mqtt.MQTTv5):
    run("tcp", tcp_port, version)
    run("websockets", ws_port, version)
