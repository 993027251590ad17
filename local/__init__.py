"""The embedded local runtime: template.yaml on moto, an API Gateway front, pollers, schedules, simulators."""
