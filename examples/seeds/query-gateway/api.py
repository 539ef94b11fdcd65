"""The query gateway: POST /consultar records a query as pending, publishes it to RabbitMQ and
answers at once; GET /consultar/{id} tells its status. A worker (worker.py) does the work.

Written as the original describes it: FastAPI, psycopg2, pika; one connection per request (pika's
BlockingConnection is not thread-safe, and FastAPI runs these handlers in a thread pool)."""
import json
import os

import pika
import psycopg2
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres:postgres@db:5432/postgres")
RABBITMQ_HOST = os.environ.get("RABBITMQ_HOST", "rabbitmq")
QUEUE = "consultas"

app = FastAPI(title="consultas")


class Consulta(BaseModel):
    producto_id: int


def publish(message: dict) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters(host=RABBITMQ_HOST))
    try:
        channel = connection.channel()
        channel.queue_declare(queue=QUEUE, durable=True)
        channel.basic_publish(
            exchange="",
            routing_key=QUEUE,
            body=json.dumps(message),
            properties=pika.BasicProperties(delivery_mode=2),  # persistent
        )
    finally:
        connection.close()


@app.post("/consultar")
def consultar(consulta: Consulta):
    conn = psycopg2.connect(DATABASE_URL)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO consulta (producto_id, status) VALUES (%s, 'pending') RETURNING id",
                (consulta.producto_id,),
            )
            consulta_id = cur.fetchone()[0]
    finally:
        conn.close()
    publish({"consulta_id": consulta_id, "producto_id": consulta.producto_id})
    return {"consulta_id": consulta_id, "status": "pending"}


@app.get("/consultar/{consulta_id}")
def estado(consulta_id: int):
    conn = psycopg2.connect(DATABASE_URL)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT status, resultado FROM consulta WHERE id = %s", (consulta_id,))
            row = cur.fetchone()
    finally:
        conn.close()
    if row is None:
        raise HTTPException(status_code=404, detail="no such consulta")
    return {"consulta_id": consulta_id, "status": row[0], "resultado": row[1]}
