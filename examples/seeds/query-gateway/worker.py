"""The worker: consumes the `consultas` queue, reads the product, completes the query.

The pika tutorial's work queue, as the original describes a worker: a durable queue, one
message at a time (prefetch 1), acknowledged after the database commit. No reconnect loop:
when the broker connection drops, the worker exits (and the compose file restarts nothing)."""
import json
import os
import time

import pika
import psycopg2

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres:postgres@db:5432/postgres")
RABBITMQ_HOST = os.environ.get("RABBITMQ_HOST", "rabbitmq")
# The time one query takes to compute: the slow report that made the gateway asynchronous.
SECONDS_PER_QUERY = float(os.environ.get("SECONDS_PER_QUERY", "0.2"))
QUEUE = "consultas"


def handle(channel, method, properties, body):
    message = json.loads(body)
    conn = psycopg2.connect(DATABASE_URL)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT nombre, precio, stock FROM producto WHERE id = %s", (message["producto_id"],))
            row = cur.fetchone()
            time.sleep(SECONDS_PER_QUERY)
            resultado = "no existe" if row is None else f"{row[0]}: {row[2]} a {row[1]}"
            cur.execute(
                "UPDATE consulta SET status = 'done', resultado = %s, completada = now() WHERE id = %s",
                (resultado, message["consulta_id"]),
            )
    finally:
        conn.close()
    channel.basic_ack(delivery_tag=method.delivery_tag)


def main():
    connection = pika.BlockingConnection(pika.ConnectionParameters(host=RABBITMQ_HOST))
    channel = connection.channel()
    channel.queue_declare(queue=QUEUE, durable=True)
    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue=QUEUE, on_message_callback=handle)
    print("worker: waiting for consultas", flush=True)
    channel.start_consuming()


if __name__ == "__main__":
    main()
