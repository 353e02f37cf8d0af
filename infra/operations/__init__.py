"""Operations infrastructure: backups, cost checks, budgets, DR and event-path drills on schedules."""
