DROP TABLE scaffolder_task_events;
DROP TABLE scaffolder_tasks;
