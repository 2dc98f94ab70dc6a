"""Answers for solutions/06_evaluating_gans.ipynb."""

TOYS = ("ring = data.ring8(",)   # the cell defining real2d and the three toy generators of Exercise 2

EXERCISES = {
    "Exercise 1": {
        "wrong": [
            {"why": "tr(sqrt(S1) sqrt(S2)) instead of tr((S1 S2)^(1/2)): right only when the covariances commute",
             "answer": "mu1, mu2 = np.asarray(mu1, float), np.asarray(mu2, float)\n"
                       "cross = scipy.linalg.sqrtm(cov1).real @ scipy.linalg.sqrtm(cov2).real\n"
                       "return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(cross))",
             "hint": ("general covariances", "course_lib")},
            {"why": "the distance of the means, not its square",
             "answer": "covmean = scipy.linalg.sqrtm(np.asarray(cov1) @ np.asarray(cov2)).real\n"
                       "return float(np.linalg.norm(np.asarray(mu1) - np.asarray(mu2)) + np.trace(cov1) "
                       "+ np.trace(cov2) - 2 * np.trace(covmean))",
             "hint": ("shifted Gaussians", "||m||^2")},
            {"why": "the factor 2 of the cross term forgotten",
             "answer": "covmean = scipy.linalg.sqrtm(np.asarray(cov1) @ np.asarray(cov2)).real\n"
                       "return float(((np.asarray(mu1) - np.asarray(mu2)) ** 2).sum() + np.trace(cov1) "
                       "+ np.trace(cov2) - np.trace(covmean))",
             "hint": ("identical Gaussians must give 0",)},
        ],
        "right": [
            # the eigenvalue route of course_lib: tr((S1^(1/2) S2 S1^(1/2))^(1/2)), no complex numbers
            "s1 = scipy.linalg.sqrtm(np.asarray(cov1, float)).real\ninner = s1 @ np.asarray(cov2, float) @ s1\n"
            "tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()\n"
            "diff = np.asarray(mu1, float) - np.asarray(mu2, float)\n"
            "return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * tr_sqrt)",
            "diff = np.subtract(mu1, mu2)\n"
            "return float(diff.dot(diff) + np.trace(np.add(cov1, cov2) - 2 * scipy.linalg.sqrtm(np.dot(cov1, cov2)).real))",
        ],
    },
    "Exercise 2": {
        "cells": TOYS,
        "wrong": [
            {"why": "the hint's recipe in float32 (the toy data's dtype): rounded distances flip boundary samples",
             "answer": "d = torch.cdist(real, real)\nd.fill_diagonal_(float('inf'))\n"
                       "radii = d.kthvalue(k, dim=1).values\ninside = torch.cdist(fake, real) <= radii[None, :]\n"
                       "return float(inside.any(dim=1).float().mean())",
             "hint": ("float64",)},
            {"why": "the diagonal kept: each point is its own nearest neighbour, so the radii are one neighbour short",
             "answer": "d = torch.cdist(real.double(), real.double())\nradii = d.kthvalue(k, dim=1).values\n"
                       "inside = torch.cdist(fake.double(), real.double()) <= radii[None, :]\n"
                       "return float(inside.any(dim=1).double().mean())",
             "hint": ("precision", "course_lib")},
            {"why": "balls around the generated points: that is recall, not precision",
             "answer": "d = torch.cdist(fake.double(), fake.double())\nd.fill_diagonal_(float('inf'))\n"
                       "radii = d.kthvalue(k, dim=1).values\n"
                       "inside = torch.cdist(real.double(), fake.double()) <= radii[None, :]\n"
                       "return float(inside.any(dim=1).double().mean())",
             "hint": ("precision", "course_lib")},
            {"why": "all balls instead of any ball",
             "answer": "d = torch.cdist(real.double(), real.double())\nd.fill_diagonal_(float('inf'))\n"
                       "radii = d.kthvalue(k, dim=1).values\n"
                       "inside = torch.cdist(fake.double(), real.double()) <= radii[None, :]\n"
                       "return float(inside.all(dim=1).double().mean())",
             "hint": ("precision",)},
        ],
        "right": [
            # sorted distances: column 0 is the point itself, column k its k-th neighbour; a loop over samples
            "r, f = real.double(), fake.double()\nradii = torch.cdist(r, r).sort(dim=1).values[:, k]\n"
            "dist = torch.cdist(f, r)\n"
            "return sum(bool((dist[j] <= radii).any()) for j in range(len(f))) / len(f)",
        ],
    },
}
