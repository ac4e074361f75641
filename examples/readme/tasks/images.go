package tasks

// The README's workflow tasks: an image pipeline.

import "github.com/conveyorhq/conveyor/queue"

type ResizeArgs struct {
	URL   string `json:"url"`
	Width int    `json:"width"`
}

type ZipArgs struct {
	Name string `json:"name"`
}

type LinkArgs struct {
	To string `json:"to"`
}

var (
	Resize   = queue.NewTask[ResizeArgs, string]("images.resize", queue.TaskOptions{Queue: "images"})
	Zip      = queue.NewTask[ZipArgs, string]("images.zip", queue.TaskOptions{Queue: "images"})
	SendLink = queue.NewTask[LinkArgs, string]("images.send_link", queue.TaskOptions{Queue: "images"})
)
