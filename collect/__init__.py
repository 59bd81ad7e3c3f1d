"""`flywheel collect`: events over HTTP (apps in any language, browsers) into the Kafka topics."""
