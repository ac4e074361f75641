// Package queue is Conveyor's task API, a "database/sql of tasks": a library
// defines typed tasks and enqueues them without choosing a backend; the
// application picks the backend when it builds its Client.
//
// Define a task once, at package level:
//
//	var SendEmail = queue.NewTask[EmailArgs, queue.None]("email.send", queue.TaskOptions{Queue: "email"})
//
// Enqueue it from anywhere that has a Client:
//
//	h, err := SendEmail.Enqueue(ctx, client, EmailArgs{To: "a@example.com"}, nil)
//	if errors.Is(err, queue.ErrQueueFull) { /* answer 503 */ }
//
// Workers (package worker) register a handler per task and run the jobs.
// Options are plain structs whose zero values mean "the default", and each
// field's comment states that default.
package queue
