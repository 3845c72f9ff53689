# One image for web, worker and beat (docker-compose.yml picks the command).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=voiceplatform.settings
WORKDIR /app

RUN apt-get update && apt-get install -y --no-install-recommends libpq5 \
    && rm -rf /var/lib/apt/lists/*

COPY requirements.txt requirements-nodeps.txt ./
# torch is pinned to the CPU build's version; the CPU wheel index keeps the image small.
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt \
    && pip install --no-deps -r requirements-nodeps.txt

COPY . .
RUN useradd --create-home --uid 1000 app && mkdir -p /app/media /app/var/prometheus && chown -R app /app/media /app/var
USER app

EXPOSE 8000
# voiceplatform.serve: uvicorn (websockets-sansio) that drains live calls on SIGTERM.
CMD ["python", "-m", "voiceplatform.serve", "--host", "0.0.0.0", "--port", "8000", "--loop", "uvloop", "--http", "httptools"]
