// Reinforcement learning in the lab: tasks with verifiable rewards, losses, optimizer, trainer.
