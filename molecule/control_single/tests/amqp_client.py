"""AMQP client run inside the test containers with python3-pika.

Passed to ``python3 -c`` by the testinfra modules of the rabbitmq scenarios.
Usage: MODE USER PASSWORD VHOST [QUEUE [BODY]]; the password comes from the
AMQP_PASSWORD environment variable when given as ``-``.

Modes:
  roundtrip QUEUE BODY  declare a quorum queue, publish BODY, consume it, delete the queue
  publish QUEUE BODY    declare a quorum queue and publish BODY with a publisher confirm
  consume QUEUE         get one message from QUEUE (waiting up to 30 s), delete the queue
  login                 open and close a connection
Prints the consumed body; exits 3 when the broker refuses the credentials.
"""

import os
import sys
import time

import pika
import pika.exceptions


def connect(user, password, vhost):
    params = pika.ConnectionParameters(
        host="localhost",
        virtual_host=vhost,
        credentials=pika.PlainCredentials(user, password),
        connection_attempts=1,
    )
    try:
        return pika.BlockingConnection(params)
    except pika.exceptions.ProbableAuthenticationError:
        sys.exit(3)
    except pika.exceptions.ProbableAccessDeniedError:
        sys.exit(3)


def declare(channel, queue):
    channel.queue_declare(queue=queue, durable=True, arguments={"x-queue-type": "quorum"})


def publish(channel, queue, body):
    declare(channel, queue)
    channel.confirm_delivery()
    channel.basic_publish(
        exchange="",
        routing_key=queue,
        body=body.encode(),
        properties=pika.BasicProperties(delivery_mode=2),
        mandatory=True,
    )


def consume(channel, queue):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        method, _props, body = channel.basic_get(queue=queue, auto_ack=True)
        if method is not None:
            channel.queue_delete(queue=queue)
            return body.decode()
        time.sleep(0.2)
    sys.exit("no message in %s" % queue)


def main(argv):
    mode, user, password, vhost = argv[:4]
    if password == "-":
        password = os.environ["AMQP_PASSWORD"]
    connection = connect(user, password, vhost)
    channel = connection.channel()
    if mode == "roundtrip":
        publish(channel, argv[4], argv[5])
        print(consume(channel, argv[4]))
    elif mode == "publish":
        publish(channel, argv[4], argv[5])
    elif mode == "consume":
        print(consume(channel, argv[4]))
    elif mode != "login":
        sys.exit("unknown mode %s" % mode)
    connection.close()


if __name__ == "__main__":
    main(sys.argv[1:])
